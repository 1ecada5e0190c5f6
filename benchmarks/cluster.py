"""Many relays: failover time, join through a redirect vs direct, and the lease load on PostgreSQL.

- Failover: three `cctv-relay serve` replicas on one private PostgreSQL, a real RTSP camera (GStreamer), an
  aiortc viewer; the camera's owner is killed (SIGKILL) and the viewer does what the dashboard does (its
  picture stops: POST again through a live replica, Retry-After on 503) until a frame arrives. Time from
  the kill to that frame, over `--kills` kills (the killed replica is started again between kills).
- Join: offer to first frame, asking the owner directly vs asking another replica (307, followed).
- Lease load: 1,000 watched cameras held by three simulated replicas (LeaseStore, the relay's own
  statements), each renewing all its leases in one statement every second; renewals/s and statement ms.

The replicas and viewers reuse the cluster tests' harness (tests/cluster/replicas.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from benchmarks.common import Postgres, machine_info, write_results
from benchmarks.join import sample_clip, summary
from policies.context import build_context
from policies.settings import PolicySettings
from relay.cluster.store import LeaseStore
from relay.sample_camera import RtspServer
from tests.app.conftest import CAMERA, seed
from tests.cluster.replicas import (
    SIGNING_KEY,
    TOKEN_SECRET,
    Cluster,
    Replica,
    first_frame,
    free_port,
    stalled,
)

IDS = ("relay-0", "relay-1", "relay-2")


def lease_load(url: str, cameras: int = 1000, replicas: int = 3, seconds: float = 20.0) -> dict[str, Any]:
    engine = create_engine(url, pool_size=replicas + 2)
    LeaseStore(engine, "setup").create_tables()
    stores = [LeaseStore(engine, f"sim-{i}") for i in range(replicas)]
    held: list[dict[str, int]] = [{} for _ in stores]
    claim_ms: list[float] = []
    for n in range(cameras):
        i = n % replicas
        t = time.perf_counter()
        epoch = stores[i].claim(f"cam-{n:05d}", 4.0)
        claim_ms.append((time.perf_counter() - t) * 1000)
        assert epoch is not None
        held[i][f"cam-{n:05d}"] = epoch
    renew_ms: list[float] = []
    renewed = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def renew(i: int) -> None:
        time.sleep(i / replicas)  # replicas renew out of phase, as independent processes do
        while time.monotonic() < stop:
            t = time.perf_counter()
            got = stores[i].renew(held[i].items(), 4.0, advertise=f"/r/sim-{i}", state="serving",
                                  max_cameras=None)
            ms = (time.perf_counter() - t) * 1000
            with lock:
                renew_ms.append(ms)
                renewed[0] += len(got)
            assert len(got) == len(held[i])
            time.sleep(max(0.0, 1.0 - ms / 1000))

    threads = [threading.Thread(target=renew, args=(i,)) for i in range(replicas)]
    started = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - started
    engine.dispose()
    return {"cameras": cameras, "replicas": replicas, "seconds": round(elapsed, 1),
            "lease_renewals_per_s": round(renewed[0] / elapsed, 1),
            "statements_per_s": round(len(renew_ms) / elapsed, 2),
            "renew_statement_ms": summary(renew_ms), "claim_ms": summary(claim_ms)}


async def failover_and_join(c: Cluster, kills: int, joins: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    failover: list[float] = []
    for k in range(kills):
        viewer, _ = await c.join(CAMERA, c.alive()[k % len(c.alive())])
        assert viewer.status == 201, viewer.text
        assert await first_frame(viewer, 30)
        owner = viewer.location.split("/")[2]
        c.replicas[owner].kill()
        killed = loop.time()
        await stalled(viewer, silence_s=1.0)
        rejoined, _ = await c.rejoin(CAMERA, deadline_s=20)
        assert await first_frame(rejoined, 15)
        failover.append(loop.time() - killed)
        print(f"kill {k + 1}: video back after {failover[-1]:.2f} s", flush=True)
        await viewer.close()
        await rejoined.close()
        c.replicas[owner].start()
    # Join times with the camera already pulled by its owner (a keeper viewer holds it).
    keeper, _ = await c.join(CAMERA, "relay-0")
    assert await first_frame(keeper, 30)
    owner = keeper.location.split("/")[2]
    other = next(r for r in IDS if r != owner)
    times: dict[str, list[float]] = {"direct": [], "redirect": []}
    for _ in range(joins):
        for how, via in (("direct", owner), ("redirect", other)):
            t = loop.time()
            v, responses = await c.join(CAMERA, via)
            assert v.status == 201 and (len(responses) == 2) == (how == "redirect")
            assert await first_frame(v, 20)
            times[how].append((loop.time() - t) * 1000)
            await v.close()
    await keeper.close()
    return {"failover_s": summary(failover), "failover_samples_s": [round(x, 2) for x in failover],
            "join_ms": {k: summary(v) for k, v in times.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--joins", type=int, default=10)
    ap.add_argument("--cameras", type=int, default=1000)
    args = ap.parse_args()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="cctv-bench-cluster-"))
    with Postgres() as pg:
        load = lease_load(pg.create("leases"), cameras=args.cameras)
        print("lease load:", load, flush=True)
        url = pg.create("relay")
        ctx = build_context(PolicySettings(database_url=url, token_secret=TOKEN_SECRET,
                                           audit_signing_key=SIGNING_KEY))
        clip = sample_clip(640, 360, 4.0)
        with RtspServer(clip, path="/street", fps=25) as camera:
            seed(ctx, tmp, camera.url)
            LeaseStore(ctx.db.engine, "bench").create_tables()
            ctx.db.dispose()
            c = Cluster({}, url)
            for rid in IDS:
                c.replicas[rid] = Replica(rid, free_port(), c.env(rid), tmp / f"{rid}.log")
                c.replicas[rid].start()
            try:
                measured = asyncio.run(failover_and_join(c, args.kills, args.joins))
            finally:
                for r in c.replicas.values():
                    if r.alive():
                        r.kill()
    data = {"machine": machine_info(), "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "settings": {"lease_ttl_s": 4.0, "lease_renew_s": 1.0, "replica_stale_s": 6.0, "replicas": 3},
            "lease_load": load, **measured}
    write_results("cluster", data, _figure(data))
    shutil.rmtree(tmp, ignore_errors=True)


def _figure(data: dict[str, Any]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].bar(range(1, len(data["failover_samples_s"]) + 1), data["failover_samples_s"], color="#c0504d")
    axes[0].axhline(8, ls="--", color="grey", label="target 8 s")
    axes[0].set(title="owner killed: video back after", xlabel="kill", ylabel="s")
    axes[0].legend()
    joins = data["join_ms"]
    axes[1].bar(["direct p50", "direct p95", "redirect p50", "redirect p95"],
                [joins["direct"]["p50"], joins["direct"]["p95"], joins["redirect"]["p50"],
                 joins["redirect"]["p95"]], color=["#4f81bd", "#4f81bd", "#9bbb59", "#9bbb59"])
    axes[1].set(title="join: offer to first frame", ylabel="ms")
    load = data["lease_load"]
    axes[2].bar(["p50", "p95", "max"], [load["renew_statement_ms"]["p50"], load["renew_statement_ms"]["p95"],
                                        load["renew_statement_ms"]["max"]], color="#8064a2")
    axes[2].set(title=f"{load['cameras']} leases: {load['lease_renewals_per_s']:.0f} renewals/s",
                ylabel="ms per renewal statement")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
