"""Plugin authoring: scaffold a plugin project (`solstice plugin new`) and build it (`solstice plugin build`).

Kept apart from the CLI so the commands stay thin and the logic can be tested and reused directly.
"""

from solstice.authoring.errors import AuthoringError

__all__ = ["AuthoringError"]
