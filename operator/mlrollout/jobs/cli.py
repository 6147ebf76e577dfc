"""`mlrollout <job> ...`: one console script for every Job the operator starts in the runtime image.

Each subcommand lives in its own package and is imported only when run, so a gate Job never pays
for the monitor's imports (Evidently) and the reverse.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# subcommand -> module with `main(argv: Sequence[str]) -> int`
JOBS = {
    "gate": "mlrollout.gate.job",
    "monitor": "mlrollout.monitor.job",
    "train": "mlrollout.train.job",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"} or args[0] not in JOBS:
        print(f"usage: mlrollout {{{','.join(JOBS)}}} [options]", file=sys.stderr)
        return 0 if args and args[0] in {"-h", "--help"} else 2
    module = importlib.import_module(JOBS[args[0]])
    code: int = module.main(args[1:])
    return code


if __name__ == "__main__":
    sys.exit(main())
