"""Path operations declared where they are handled, added to each app by `create_app`.

`Routes` takes APIRouter's decorators (`@routes.get(path, **options)`, the same options) and
adds each path operation to the app itself with `app.add_api_route`: FastAPI 0.137 and later
keep an included router as a node resolved anew on every request, an eighth of what a small
request costs (bench/results.md). On the app, `app.dependency_overrides` applies as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


class Routes:
    """The path operations of one module; `tags` are added to each one's own."""

    def __init__(self, *, tags: list[str] | None = None) -> None:
        self.tags = tags or []
        self._declared: list[tuple[str, Callable[..., Any], dict[str, Any]]] = []

    def api_route(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        def declare(endpoint: Endpoint) -> Endpoint:
            tags = [*self.tags, *options.get("tags", [])]
            self._declared.append((path, endpoint, {**options, "tags": tags}))
            return endpoint

        return declare

    def get(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.api_route(path, methods=["GET"], **options)

    def post(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.api_route(path, methods=["POST"], **options)

    def put(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.api_route(path, methods=["PUT"], **options)

    def patch(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.api_route(path, methods=["PATCH"], **options)

    def delete(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.api_route(path, methods=["DELETE"], **options)

    def add_to(self, app: FastAPI) -> None:
        for path, endpoint, options in self._declared:
            app.add_api_route(path, endpoint, **options)
