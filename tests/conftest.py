import os

import pytest
import torch
import torch.distributed
from hypothesis import settings

# Property tests draw the same examples on every run: a failure reproduces, and CI is never red by chance.
settings.register_profile("seeded", derandomize=True, print_blob=True)
settings.load_profile("seeded")


@pytest.fixture(autouse=True)
def _restore_env_and_process_group():
    """Each test starts and ends without a process group and with the environment it found."""
    env = dict(os.environ)
    yield
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    os.environ.clear()
    os.environ.update(env)


@pytest.fixture(autouse=True)
def _few_threads():
    """One thread per test process: CI runs two of them (`-n 2`) on 2 cores, and oversubscribed threads are many
    times slower there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
