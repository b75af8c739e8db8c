"""The API's contract, fuzzed at length: `python -m bench.contract [--per-operation N]`.

Starts `coordinator serve` as its own process on loopback, with one published pooled set, and sends
it schemathesis' generated cases: N valid (positive) and N invalid (negative) cases for every
operation of the OpenAPI document, as an operator and as a researcher. Counts the cases, the
server errors (any 5xx: the goal is 0) and every other way an answer broke the contract
(undocumented status, wrong content type, a body that does not match its schema), by check.
Also counted: schema-valid cases the API refused with 422 (a rule the schema cannot express, such
as "no foundation for dpgan3d") and invalid cases it accepted. The suite runs a bounded form
(tests/coordinator/service/test_contract.py, 12 cases per operation).

Registering a site (POST /sites) is left out: it calls the SuperLink, which is not running here;
the federation tests cover it. Results go to bench/results/contract.json.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from bench.common import write_result
from bench.download import wait_http, write_large_pooled_set
from shared.federation.processes import free_port


def contract_schema(scratch: Path) -> Any:
    from coordinator.config import load_coordinator_settings
    from coordinator.coordinator_toml import write_coordinator_toml
    from coordinator.service.app import create_app

    config = write_coordinator_toml(scratch / "schema")
    document = create_app(load_coordinator_settings(config), config).openapi()
    return schemathesis.openapi.from_dict(document).exclude(method="POST", path="/sites")


def fuzz_operation(
    operation: Any, mode: GenerationMode, url: str, token: str, count: int, tally: dict[str, Any]
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        response = case.call(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        tally["cases"] += 1
        tally["statuses"][response.status_code] += 1
        if response.status_code >= 500:
            tally["server_errors"].append(
                {"operation": operation.label, "status": response.status_code, "body": response.text[:300]}
            )
        # Beyond the schema's own checks: does the API accept what the schema calls valid, and
        # refuse what it calls invalid? (A 422 to a valid case is a rule the schema cannot say.)
        if mode is GenerationMode.POSITIVE and response.status_code == 422:
            tally["valid_refused"][f"{operation.label}: {response.text[:160]}"] += 1
        if mode is GenerationMode.NEGATIVE and response.status_code < 300 and not _only_auth_broken(case):
            why = getattr(_mutation(case), "description", "?")
            tally["invalid_accepted"][f"{operation.label}: {why}; query {case.query}"] += 1
        try:
            case.validate_response(response)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a group of failed checks
            for failure in getattr(exc, "exceptions", [exc]):
                title = getattr(failure, "title", type(failure).__name__)
                tally["contract_failures"][f"{operation.label}: {title}"] += 1

    try:
        send()
    except Unsatisfiable:  # an operation with nothing to get wrong (no parameters, no body)
        tally["no_negative_cases"].add(operation.label)


def _mutation(case: Any) -> Any:
    """What schemathesis changed to make a negative case (its description, the parameter), or None."""
    return getattr(getattr(getattr(case, "meta", None), "phase", None), "data", None)


def _only_auth_broken(case: Any) -> bool:
    """A negative case whose only fault was its Authorization header: the role's token replaces
    that header here (the point is each role's answers), so the case is valid as sent."""
    return getattr(_mutation(case), "parameter", None) == "Authorization"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-operation", type=int, default=30, help="cases per operation, mode and role")
    args = parser.parse_args(argv)

    from coordinator.config import load_coordinator_settings
    from coordinator.coordinator_toml import write_coordinator_toml
    from coordinator.service.database import Database
    from coordinator.service.tokens import create_token

    root = Path(tempfile.mkdtemp(prefix="fedsynth-bench-contract-"))
    config = write_coordinator_toml(root / "coordinator")
    coordinator = load_coordinator_settings(config)
    write_large_pooled_set(coordinator.paths.data, 6)
    database = Database.open(coordinator)
    with database.session() as session:
        tokens = {
            role: create_token(session, name=f"bench-{role}", role=role)
            for role in ("operator", "researcher")
        }
    database.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen(
        [sys.executable, "-m", "coordinator", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    tally: dict[str, Any] = {
        "cases": 0,
        "statuses": Counter(),
        "server_errors": [],
        "contract_failures": Counter(),
        "no_negative_cases": set(),
        "valid_refused": Counter(),
        "invalid_accepted": Counter(),
    }
    started = time.monotonic()
    try:
        wait_http(f"{url}/health", serve, "coordinator serve")
        operator = {"Authorization": f"Bearer {tokens['operator']}"}
        while not httpx.get(f"{url}/datasets", headers=operator, timeout=30).json():
            time.sleep(0.3)
        httpx.post(f"{url}/datasets/pooled/1/publish", headers=operator, timeout=30).raise_for_status()
        schema = contract_schema(root)
        operations = [result.ok() for result in schema.get_all_operations()]
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                for token in tokens.values():
                    fuzz_operation(operation, mode, url, token, args.per_operation, tally)
            print(f"{operation.label}: {tally['cases']} cases so far", flush=True)
    finally:
        serve.terminate()
        server_log = serve.communicate(timeout=30)[1].decode(errors="replace")
        shutil.rmtree(root, ignore_errors=True)
    payload = {
        "command": "python -m bench.contract " + " ".join(argv if argv is not None else sys.argv[1:]),
        "operations": len(operations),
        "per_operation_mode_role": args.per_operation,
        "cases": tally["cases"],
        "server_errors": len(tally["server_errors"]),
        "server_error_examples": tally["server_errors"][:10],
        "contract_failures": sum(tally["contract_failures"].values()),
        "contract_failures_by_check": dict(tally["contract_failures"].most_common()),
        "valid_cases_refused": sum(tally["valid_refused"].values()),
        "valid_cases_refused_examples": dict(tally["valid_refused"].most_common(5)),
        "invalid_cases_accepted": dict(tally["invalid_accepted"].most_common()),
        "operations_without_negative_cases": sorted(tally["no_negative_cases"]),
        "statuses": {str(k): v for k, v in sorted(tally["statuses"].items())},
        "tracebacks_in_server_log": server_log.count("Traceback"),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(f"wrote {write_result('contract', payload)}")
    print(
        f"{payload['cases']} cases over {payload['operations']} operations: "
        f"{payload['server_errors']} server errors, {payload['contract_failures']} other contract failures"
    )
    return payload


if __name__ == "__main__":
    main()
