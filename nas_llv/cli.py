"""``nas-llv``: the command line. Each subcommand is one module of ``nas_llv/commands/`` (``COMMANDS``).

User errors (ConfigError, and bad arguments) print one line and exit with status 2, without a
traceback (an error may name its own status: 3 for a training that ``--strict`` finds implausible).
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
from typing import Iterator, NoReturn, Sequence

from nas_llv.config import ConfigError
from nas_llv.device import set_threads
from nas_llv.signals import Terminated, exit_status, sigterm_raises



class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage itself is a --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from nas_llv import __version__
    from nas_llv.registry import COMMANDS

    parser = _Parser(prog="nas-llv", description="Neural architecture search for low-light vision.")
    parser.add_argument("--version", action="version", version=f"nas-llv {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:  # every module of nas_llv/commands registers its add_parser
        COMMANDS.get(name)(sub)
    for command in sub.choices.values():
        command.add_argument("--threads", type=_positive, metavar="N",
                             help="CPU threads for torch (default: the cores this process may use)")
    return parser


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a number of threads >= 1, got '{text}'")
    return n


@contextlib.contextmanager
def _process_group() -> Iterator[None]:
    """Join torchrun's process group for the command (imports torch only under torchrun)."""
    if "LOCAL_RANK" not in os.environ:  # not started by torchrun
        yield
        return
    from nas_llv import distributed

    distributed.init()
    try:
        yield
    finally:
        distributed.teardown()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may follow options too: `search r.yaml --output d a.b=1`
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides or []) + extra
    elif extra:
        print(f"nas-llv {args.command}: error: unrecognized arguments: {' '.join(extra)} "
              f"(see nas-llv {args.command} --help)", file=sys.stderr)
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what --nproc hands to torchrun
    # under torchrun (nas_llv.distributed) only rank 0 speaks: the others log warnings only
    quiet = int(os.environ.get("RANK", "0")) > 0
    level = logging.WARNING if quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.raiseExceptions = False  # a log.txt on a full disk must not print a traceback per message
    set_threads(args.threads)
    try:
        with sigterm_raises(), _process_group():
            return int(args.run(args) or 0)
    except ConfigError as exc:  # a RegistryError (an unknown name) is one too
        if not quiet:  # every rank meets the same user error; rank 0 reports it
            print(f"nas-llv {args.command}: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_status", 2)  # 3: train --strict found the result implausible
    except OSError as exc:  # a full disk that a write outside nas_llv.atomic met: one line too
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"nas-llv {args.command}: error: no space left on device writing {exc.filename or 'a file'}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"nas-llv {args.command}: {'terminated (SIGTERM)' if isinstance(exc, Terminated) else 'interrupted'}",
              file=sys.stderr)
        return exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
