"""Two "nodes" of two processes each on 127.0.0.1: Lightning's multi-node DDP (gloo) started as a cluster would.

Each node is a subprocess given ``MASTER_ADDR``, ``MASTER_PORT``, ``NODE_RANK`` and ``WORLD_SIZE``, in its own process
group, and Lightning starts the node's second process itself. The callback must label what one process labels, and a
run whose node 1 is killed in the middle of a pool pass must resume from its last checkpoint to the uninterrupted
run's labels. Every wait is bounded and every process is killed at the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

NODES, DEVICES = 2, 2
RUN_SECONDS = 150  # a whole run of four processes on a loaded 2-core machine takes about 30 s
SCRIPT = "tests.distributed.multinode_script"
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "TORCHELASTIC_"))}
    for key in ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "RANK"):
        env.pop(key, None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    return {**env, **extra}


class Cluster:
    """The nodes of one run, each a process group of its own so that a node dies whole."""

    def __init__(self, root: Path, out: Path, *args: str, nodes: int = NODES, devices: int = DEVICES) -> None:
        root.mkdir(parents=True, exist_ok=True)
        port = str(_free_port())
        command = [sys.executable, "-m", SCRIPT, str(root), *args[:1], str(out), *args[1:]]
        command += ["--nodes", str(nodes), "--devices", str(devices)]
        self.nodes = []
        for node in range(nodes):
            env = _env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NODE_RANK=str(node), WORLD_SIZE=str(nodes * devices))
            log = open(root / f"node{node}.log", "w")  # noqa: SIM115 - closed with the cluster
            self.nodes.append(
                subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            log.close()
        self.root = root

    def wait(self, timeout: float = RUN_SECONDS) -> list[int]:
        deadline = time.monotonic() + timeout
        return [node.wait(timeout=max(1.0, deadline - time.monotonic())) for node in self.nodes]

    def kill(self, node: int) -> None:
        # The node's group outlives its first process: Lightning's second process may still be in it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.nodes[node].pid, signal.SIGKILL)
        self.nodes[node].wait(timeout=30)

    def logs(self) -> str:
        return "\n".join((self.root / f"node{n}.log").read_text()[-2000:] for n in range(len(self.nodes)))

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        for node in range(len(self.nodes)):
            self.kill(node)


def _run(root: Path, out: Path, *args: str, **shape: int) -> dict:
    with Cluster(root, out, *args, **shape) as cluster:
        try:
            codes = cluster.wait()
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run did not end in {RUN_SECONDS} s:\n{cluster.logs()}")
        assert codes == [0] * len(codes), cluster.logs()
    return torch.load(out, weights_only=True)


def test_two_nodes_label_what_one_process_labels(tmp_path):
    """With training off (lr=0) both runs score the same model: the picks agree step for step."""
    one = _run(tmp_path / "one", tmp_path / "one.pt", "2", "--lr", "0", nodes=1, devices=1)
    four = _run(tmp_path / "four", tmp_path / "four.pt", "2", "--lr", "0")
    assert four["world_size"] == NODES * DEVICES
    assert four["steps_done"] == one["steps_done"] == 2
    assert torch.equal(four["acquired_at"], one["acquired_at"])


def test_a_node_killed_in_a_pool_pass_resumes_to_the_uninterrupted_labels(tmp_path):
    full = _run(tmp_path / "full", tmp_path / "full.pt", "2")
    root = tmp_path / "run"
    # The first pool pass reads 21 items per rank (84 over four ranks), +2 for the determinism check: pause 10 reads
    # into the second one.
    with Cluster(root, tmp_path / "never.pt", "2", "--pause-after-pool-reads", "33") as cluster:
        deadline = time.monotonic() + RUN_SECONDS
        while len(list(root.glob("paused-*"))) < DEVICES:
            assert time.monotonic() < deadline, f"node 1 never reached its second pool pass:\n{cluster.logs()}"
            assert cluster.nodes[1].poll() is None, cluster.logs()
            time.sleep(0.2)
        cluster.kill(1)
        # Node 0 now waits on a dead peer in a collective, or fails on the lost connection; a cluster would end it.
        cluster.kill(0)
    assert not (tmp_path / "never.pt").exists()
    assert sorted(int(p.name.split("-")[1]) for p in root.glob("paused-*")) == [2, 3], "node 1 holds ranks 2 and 3"
    last = root / "ckpt" / "last.ckpt"
    assert torch.load(last, weights_only=True)["ActiveDataModule"]["step"] == 1, "killed during step 2"
    resumed = _run(root, tmp_path / "resumed.pt", "2", "--ckpt", str(last))
    assert torch.equal(resumed["acquired_at"], full["acquired_at"])
    assert resumed["steps_done"] == full["steps_done"] == 2
