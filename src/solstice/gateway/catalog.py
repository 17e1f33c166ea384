"""The service API's view of what a gateway serves: LLMs, apps and approved scopes, from its config."""

from __future__ import annotations

from collections.abc import Callable

from solstice.gateway.routes import ConfigHolder
from solstice.protocol import pb


class ConfigCatalog:
    """A Catalog read from the current GatewayConfig, on the control plane and on an edge alike."""

    def __init__(self, state: ConfigHolder, how_to_approve: Callable[[str, str], str]) -> None:
        self.state = state
        self._how_to_approve = how_to_approve

    def llms(self) -> list[pb.LlmInfo]:
        """Every LLM, in slug order, without its upstream key."""
        return [
            pb.LlmInfo(
                id=str(route.id),
                slug=route.slug,
                name=route.name,
                vendor=route.vendor,
                upstream_url=route.upstream_url,
                is_active=route.is_active,
            )
            for route in sorted(self.state.config.routes.values(), key=lambda r: r.slug)
        ]

    def apps(self) -> list[pb.AppInfo]:
        """Every app, in id order, with the slugs of the LLMs it may call and without its keys."""
        slugs = {route.id: route.slug for route in self.state.config.routes.values()}
        return [
            pb.AppInfo(
                id=str(app.id),
                name=app.name,
                is_active=app.is_active,
                llms=sorted(slugs[i] for i in app.llm_ids if i in slugs),
            )
            for app in sorted(self.state.config.apps_by_id.values(), key=lambda a: a.id)
        ]

    def approved(self, slug: str) -> frozenset[str]:
        """The scopes plugin `slug` may use now."""
        return self.state.config.approved_scopes.get(slug, frozenset())

    def how_to_approve(self, slug: str, scope: str) -> str:
        """How this runtime's operator approves a scope."""
        return self._how_to_approve(slug, scope)
