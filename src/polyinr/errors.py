"""The one exception type the command line turns into a one-line message."""


class PolyinrError(Exception):
    """An error caused by the user's input or environment, with a message that says what to do."""


class UnusedSetting(PolyinrError):
    """A setting given for a component (a loss, a discriminator) that does not use it.

    ``setting`` is the setting's name in the library (e.g. ``gamma``) and ``owner`` the component (e.g. ``the
    hinge loss``), so a caller can name the setting in its own words (the command line names the flag).
    """

    def __init__(self, setting: str, owner: str, settings: list[str]) -> None:
        self.setting, self.owner, self.settings = setting, owner, list(settings)
        known = ", ".join(self.settings) or "none"
        super().__init__(f"{owner} does not use {setting!r}; its settings: {known}")
