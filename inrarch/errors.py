"""Errors a user can act on: they print as one line, never as a traceback."""

__all__ = ["InrarchError", "CompileError", "OptionError"]


class InrarchError(Exception):
    """A problem with what the user asked for (bad model, option or input)."""


class CompileError(InrarchError):
    """The function cannot be compiled to hardware, and why."""


class OptionError(CompileError):
    """An option has a value it cannot take.

    ``option`` names it as the API spells it (``lanes``, ``clock_mhz``); the command line shows it
    as its flag (``--lanes``, ``--clock-mhz``). The message reads ``"<option> <problem>"``, where
    ``{0}``, ``{1}``, ... in ``problem`` stand for the ``related`` options, spelled the same way.
    """

    def __init__(self, option, problem, *related):
        self.option = option
        self.problem = problem
        self.related = related
        super().__init__(self.render(lambda name: name))

    def render(self, spell):
        """The message with every option name spelled by ``spell`` (``lambda name: "--" + name``)."""
        problem = self.problem
        for index, name in enumerate(self.related):
            problem = problem.replace(f"{{{index}}}", spell(name))
        return f"{spell(self.option)} {problem}"

    def renamed(self, names):
        """The same error with the options renamed by the mapping ``names``."""
        return OptionError(names.get(self.option, self.option), self.problem,
                           *(names.get(name, name) for name in self.related))
