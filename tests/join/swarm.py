"""N devices enrolling at once (threads), run inside a device namespace; prints JSON results.

    ip netns exec DEV python -m tests.join.swarm HK1-STRING COUNT [PREFIX]
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import sys
import time

from hybrid_knative.join.agent import DeviceFacts, HubClient
from hybrid_knative.join.enrolment import parse_enrolment
from hybrid_knative.system.gpu import GpuReport


def one(enrolment_text: str, index: int, prefix: str) -> dict[str, object]:
    e = parse_enrolment(enrolment_text)
    facts = DeviceFacts(machine_id=hashlib.md5(f"{prefix}{index}".encode()).hexdigest(),
                        node_name=f"{prefix}{index}", arch="arm64", memory_mb=4096,
                        gpu=GpuReport("none", (), None, "no GPU"))
    start = time.perf_counter()
    try:
        client = HubClient(e.hubs[0], e.ca_fingerprint, timeout=30)
        client.prove_hub(e.token)
        answer = client.enrol(e.token, facts)
        return {"ok": True, "seconds": time.perf_counter() - start, "urls": answer["join_urls"],
                "enrolment": answer["enrolment"]}
    except Exception as exc:
        return {"ok": False, "seconds": time.perf_counter() - start, "error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    text, count = sys.argv[1], int(sys.argv[2])
    prefix = sys.argv[3] if len(sys.argv) > 3 else "swarm"
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(lambda i: one(text, i, prefix), range(count)))
    print(json.dumps({"wall": time.perf_counter() - start, "results": results}))


if __name__ == "__main__":
    main()
