"""Where the work of a command runs: in this process (`local`) or on a Ray cluster (`ray`).

`ExecutorSettings` is a setting of a *command*, never of a run: it is not stored in a run's
config.json nor in a comparison's plan.json, so a run started locally resumes on Ray and the other
way round (the results do not depend on it). Ray is optional (`pip install "lossgen[ray]"`) and is
imported only here and only when the `ray` executor is used; `require_ray` turns its absence into
one line that says how to install it.

`ray_session(settings)` connects for the length of a command:
- an already initialised Ray (a caller's `ray.init`, a test cluster) is used as it is and left
  running;
- `address=None` starts a private local Ray for the command (one CPU per worker process, the
  dashboard off) and stops it at the end;
- `address="auto"` joins the cluster started on this machine by `ray start --head` (or named by
  RAY_ADDRESS); `address="HOST:PORT"` (or `ray://HOST:PORT`) joins that one. A joined cluster is
  left running.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

EXECUTORS = ("local", "ray")
INSTALL_HINT = 'the ray executor needs Ray, which is not installed: pip install "lossgen[ray]"'


class ExecutorError(ValueError):
    """An executor that cannot be used as asked (Ray missing, a cluster that cannot be reached)."""


@dataclass(frozen=True)
class ExecutorSettings:
    """How a command spreads its work. Not part of any run's identity."""

    kind: str = "local"  # "local" or "ray"
    address: str | None = None  # ray only: None starts a local Ray, "auto" joins a running cluster
    workers: int | None = None  # ray only: actors that share one search round or Phase III (None: the cluster's CPUs)

    def check(self) -> None:
        if self.kind not in EXECUTORS:
            raise ExecutorError(f"unknown executor {self.kind!r}; choose {' or '.join(EXECUTORS)}")
        if self.kind == "local" and self.address is not None:
            raise ExecutorError("--ray-address needs --executor ray")
        if self.workers is not None and self.workers < 1:
            raise ExecutorError(f"workers must be at least 1, got {self.workers}")
        if self.kind == "ray":
            require_ray()

    @property
    def is_ray(self) -> bool:
        return self.kind == "ray"

    @staticmethod
    def from_options(executor: str | None, ray_address: str | None, workers: int | None = None) -> "ExecutorSettings":
        settings = ExecutorSettings(executor or "local", ray_address or None, workers)
        settings.check()
        return settings


def require_ray():
    """The `ray` module, or ExecutorError with how to install it."""
    try:
        import ray  # noqa: PLC0415 - optional dependency, imported only when asked for
    except ImportError:
        raise ExecutorError(INSTALL_HINT) from None
    return ray


# A private local Ray for one command: small, quiet, no dashboard (the cluster of `ray start` has one).
LOCAL_OBJECT_STORE = 200 * 1024 * 1024


@contextlib.contextmanager
def ray_session(settings: ExecutorSettings):
    """Ray connected for the block (see the module's doc); yields the `ray` module."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    env = {"env_vars": {"LOSSGEN_CACHE_DIR": os.environ["LOSSGEN_CACHE_DIR"]}} if "LOSSGEN_CACHE_DIR" in os.environ else None
    try:
        if settings.address is None:
            ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=LOCAL_OBJECT_STORE, include_dashboard=False,
                     log_to_driver=False, runtime_env=env)
        else:
            ray.init(address=settings.address, log_to_driver=False, runtime_env=env)
    except Exception as err:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
        where = "start a local Ray" if settings.address is None else f"join the Ray cluster at {settings.address!r}"
        raise ExecutorError(f"cannot {where}: {' '.join(str(err).split())[:300]}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def cluster_cpus(ray) -> int:
    """CPUs of the cluster's live nodes (a lost node may still count in `cluster_resources`)."""
    alive = sum(node.get("Resources", {}).get("CPU", 0) for node in ray.nodes() if node.get("Alive"))
    return max(1, int(alive))
