"""Where benchmark results go: printed, and appended as one JSON line to bench/results.jsonl."""

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.jsonl"


def record(result: dict) -> dict:
    result = {k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()}
    print(json.dumps(result, indent=1))
    with RESULTS.open("a") as f:
        f.write(json.dumps(result) + "\n")
    return result
