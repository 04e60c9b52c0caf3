"""A local multi-node Ray cluster for the tests of this folder (Ray's own test utilities): a head
that runs nothing but the drivers' helpers and two worker nodes of one CPU each, all on this
machine, with small object stores. Started once per session; every test here is marked `ray`
and skipped without Ray."""

import pytest

NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}


@pytest.fixture(scope="session")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 80 * 1024**2,
                                                      "include_dashboard": False})
    workers = [c.add_node(**NODE) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c, workers
    finally:
        ray.shutdown()
        c.shutdown()
