// mermaid-parse FILE...: parse every ```mermaid block of each Markdown file with Mermaid itself.
// Prints one line per diagram (its type) and exits 1 on the first that does not parse, or when a
// file has no diagram at all (a check that checks nothing must not pass).
import { readFileSync } from 'node:fs';
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window; // Mermaid's sanitizer (DOMPurify) needs a window at import
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');

let failed = false;
for (const file of process.argv.slice(2)) {
  const blocks = [...readFileSync(file, 'utf8').matchAll(/^```mermaid\n([\s\S]*?)^```$/gm)];
  if (blocks.length === 0) {
    console.log(`${file}: no mermaid diagram`);
    failed = true;
  }
  for (const [index, block] of blocks.entries()) {
    try {
      const result = await mermaid.parse(block[1]);
      console.log(`${file}: diagram ${index + 1}: ${result.diagramType}`);
    } catch (error) {
      console.log(`${file}: diagram ${index + 1}: ${String(error.message ?? error).split('\n').slice(0, 4).join(' | ')}`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
