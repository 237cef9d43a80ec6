"""DICOM intake throughput: multipart parsing, indexing, and the whole store pipeline.

Baseline in the same run: ``pydicom.dcmread`` of the same bytes alone — the least any
intake must do — so the ratio shows what indexing, re-framing and the durable write add.

    .venv/bin/python bench/bench_dicom.py [--instances 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pydicom
from pydicom.data.data_manager import DATA_ROOT

from bench.common import machine, rate
from cloud.dicom.index import index_dataset
from cloud.dicom.intake import Intake, read_dataset
from cloud.dicom.multipart import build_multipart, parse_multipart
from cloud.dicom.objects import ObjectStore
from cloud.dicom.sameness import same_instance
from cloud.records.crypto_at_rest import AtRest
from firmware_sim import pacs_data


def run(instances: int = 20) -> dict[str, float]:
    """Measure and return the figures (also used by ``mchub bench``)."""
    ct = (Path(DATA_ROOT) / "test_files" / "CT_small.dcm").read_bytes()
    us = (Path(DATA_ROOT) / "test_files" / "examples_ybr_color.dcm").read_bytes()
    sr = pacs_data.to_part10(pacs_data.basic_text_sr())
    results: dict[str, float] = {}
    body = build_multipart([us] * instances, b"bench-boundary")
    mb = len(body) / 1e6
    results["multipart parse MB/s"] = rate(1, lambda: parse_multipart(body, b"bench-boundary")) * mb
    for label, data in (("CT 39 KB", ct), ("US 225 KB", us), ("SR 2 KB", sr)):
        results[f"dcmread baseline {label} /s"] = rate(1, lambda d=data: pydicom.dcmread(BytesIO(d)))
        results[f"dcmread+index {label} /s"] = rate(1, lambda d=data: index_dataset(read_dataset(d)))
    with tempfile.TemporaryDirectory() as tmp:
        store = ObjectStore(tmp)
        intake = Intake(store)
        ds = pydicom.dcmread(BytesIO(ct))
        variants = []
        for i in range(instances):  # distinct SOP Instance UIDs: every write is a new file + fsync
            ds.SOPInstanceUID = f"2.25.{10**20 + i}"
            out = BytesIO()
            ds.save_as(out)
            variants.append(out.getvalue())
        it = iter(variants * 1000)
        results["full store (index+fsync) CT /s"] = rate(1, lambda: intake.store_file(next(it)), min_seconds=0.5)
    with tempfile.TemporaryDirectory() as tmp:  # sealed at rest (AES-256-GCM), as the cloud stores them
        sealed = Intake(ObjectStore(tmp, AtRest(os.urandom(32), os.urandom(32))))
        it = iter(variants * 1000)
        results["full store sealed CT /s"] = rate(1, lambda: sealed.store_file(next(it)), min_seconds=0.5)
    implicit = BytesIO()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"  # the same instance as storescu sends it by default
    ds.save_as(implicit, implicit_vr=True, little_endian=True, enforce_file_format=True)
    explicit = variants[-1]
    results["resend compared by content CT /s"] = rate(1, lambda: same_instance(explicit, implicit.getvalue()))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=50)
    args = parser.parse_args()
    print(machine())
    results = run(args.instances)
    for name, value in results.items():
        print(f"{name:40s} {value:12,.1f}")
    for label in ("CT 39 KB", "US 225 KB", "SR 2 KB"):
        base, ours = results[f"dcmread baseline {label} /s"], results[f"dcmread+index {label} /s"]
        print(f"index overhead {label:14s} {base / ours:8.2f}x the bare dcmread time")


if __name__ == "__main__":
    main()
