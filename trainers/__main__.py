"""`python -m trainers config.json`: one fine-tuning run, no Optuna anywhere."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pydantic import ValidationError

from trainers.config import TrainConfig
from trainers.errors import TrainerError
from trainers.reporting import PrintReporter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers", description=__doc__)
    parser.add_argument("config", help="a TrainConfig as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        config = TrainConfig.from_json_file(args.config)
    except (OSError, ValueError, ValidationError) as e:
        print(f"error: {args.config}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    from trainers.loop import train_and_evaluate

    try:
        result = train_and_evaluate(config, PrintReporter(config.monitor))
    except TrainerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    summary = {"best_epoch": result.best_epoch, config.monitor: result.best_value}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
