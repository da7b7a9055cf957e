"""``python -m bench train RECIPE --budget ... --seed S --device cpu|gpu|tpu``: one budgeted training run."""

from __future__ import annotations

import argparse

from bench.training import options
from bench.training import recipes as recipes_mod
from bench.training.loop import train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help=f"recipe name ({', '.join(sorted(recipes_mod.RECIPES))})")
    options.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID` prints where a long run is, without stopping it
        try:
            faulthandler.register(signal.SIGUSR1, all_threads=True)
        except (AttributeError, ValueError, OSError):  # stderr without a file descriptor (captured)
            pass
    result, path = train(args.recipe, options.Options.from_args(args))
    if result["status"] != "ok":
        print(
            f"FAILED {result['recipe']} ({result['dataset']}, {result['budget']}, seed {result['seed']}): {result['error']}; wrote {path}"
        )
        return 1
    print(
        f"{result['recipe']} on {result['dataset']}, {result['budget']}, seed {result['seed']}: top-1 {result['top1']:.2f}% "
        f"(no TTA {result['top1_no_tta']:.2f}%), loss {result['loss']:.4f}, {result['test_examples']} test images, "
        f"{result['wall_time_s']:.0f} s, {result['images_per_s']} img/s; wrote {path}"
    )
    return 0
