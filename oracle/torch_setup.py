"""Deterministic CPU torch for the oracle, and the library versions recorded next to every fixture."""

import os
import random

import numpy as np
import peft
import torch
import transformers


def deterministic_torch(seed: int) -> None:
    """Seeds every generator and pins the thread count so reruns give the same bytes on this machine.

    One thread by default: float32 sums can round differently with another split, and on a shared 2-core
    machine two spinning OpenMP threads ran up to 15x slower than one.
    """
    threads = int(os.environ.get("LORAPLEX_ORACLE_THREADS", "1"))
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def library_versions() -> dict[str, str]:
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def seeded_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
