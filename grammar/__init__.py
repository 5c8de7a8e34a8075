"""The `.irn` language: its Lark grammar (installed as `irnet.grammar`)."""

from importlib.resources import files

GRAMMAR = files(__package__).joinpath("irn.lark").read_text(encoding="utf-8")
