"""Flask adapter: middleware, error handlers and routes over the framework-agnostic core.

`app.create_app()` wires them; a route reaches the process's clients and settings through
`deps` (`current_app.extensions`), never through variables of `create_app()`.
"""
