"""The one exception type the CLI turns into a one-line message and exit code 2."""


class RaftkitError(Exception):
    """A problem the user can fix (bad input, missing file, wrong setting); never a bug."""


class ConfigError(RaftkitError):
    """A config with one or more problems; the message lists all of them."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))
