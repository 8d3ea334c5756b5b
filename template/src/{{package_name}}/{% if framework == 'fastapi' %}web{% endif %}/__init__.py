"""FastAPI adapter: middleware, error handlers and routes over the framework-agnostic core.

`app.create_app()` wires them; a route reaches the process's clients and settings through
`deps` (`request.app.state`), never through variables of `create_app()`.
"""
