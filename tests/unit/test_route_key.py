"""Sticky users: weighted rendezvous hashing is proportional, moves the fewest users when weights
change, survives a restart (the seed), and the `policyengine route-key` command prints it."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyengine.cli import main
from policyengine.gitops.status import dump_status
from policyengine.routekey import SEED_KEY, parse_weights, release_seed, route_key
from policyengine.strategies import Phase, TrafficSplit
from policyengine.strategies.status import ReleaseStatus

KEYS = [f"user-{i}" for i in range(100_000)]
SEED = release_seed("3f2a9c1be004")


def assign(weights: dict[str, float]) -> list[str]:
    return _assign(tuple(sorted(weights.items())))


@functools.cache
def _assign(weights: tuple[tuple[str, float], ...]) -> list[str]:
    return [route_key(key, dict(weights), SEED) for key in KEYS]


def test_90_10_weights_give_90_10_within_half_a_percent() -> None:
    shares = assign({"v1": 90, "v2": 10})
    v2 = shares.count("v2") / len(KEYS)
    assert abs(v2 - 0.10) <= 0.005, v2


def test_three_way_split_is_proportional() -> None:
    shares = assign({"v1": 50, "v2": 30, "v3": 20})
    for version, weight in (("v1", 0.5), ("v2", 0.3), ("v3", 0.2)):
        assert abs(shares.count(version) / len(KEYS) - weight) <= 0.005


def test_a_weight_change_moves_only_the_users_it_must() -> None:
    """90/10 → 80/20: 10 % of users must move (the change in weight); rendezvous hashing moves
    that many, all from the version that lost weight to the one that gained it."""
    before = assign({"v1": 90, "v2": 10})
    after = assign({"v1": 80, "v2": 20})
    moved = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert abs(len(moved) / len(KEYS) - 0.10) <= 0.005
    assert set(moved) == {("v1", "v2")}


def test_three_way_change_moves_close_to_the_total_variation() -> None:
    """34/33/33 → 10/80/10: 47 % must move to v2. With three versions rendezvous hashing is near-
    minimal: a few users also trade between the two versions that both lost weight."""
    keys = KEYS[:20_000]
    old = {"v1": 34, "v2": 33, "v3": 33}
    new = {"v1": 10, "v2": 80, "v3": 10}
    before = [route_key(k, old, SEED) for k in keys]
    after = [route_key(k, new, SEED) for k in keys]
    moves = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    needed = sum(max(old[v] - new[v], 0) for v in old) / 100  # 0.47
    assert abs(len(moves) / len(keys) - needed) <= 0.01, (len(moves) / len(keys), needed)
    sideways = sum(b != "v2" for _, b in moves) / len(keys)
    assert sideways <= 0.01, sideways


def test_versions_at_zero_serve_nobody_and_the_seed_decides() -> None:
    sample = KEYS[:2000]
    assert {route_key(k, {"v1": 100, "v2": 0}, SEED) for k in sample} == {"v1"}
    other = [route_key(k, {"v1": 50, "v2": 50}, "another-seed") for k in sample]
    same = [route_key(k, {"v1": 50, "v2": 50}, SEED) for k in sample]
    assert other != same
    assert same == [route_key(k, {"v1": 50, "v2": 50}, SEED) for k in sample]
    with pytest.raises(ValueError, match="no version has a positive weight"):
        route_key("u", {"v1": 0}, SEED)


def test_parse_weights() -> None:
    assert parse_weights("v1=90,v2=10,mirror=v2:10") == {"v1": 90.0, "v2": 10.0}
    with pytest.raises(ValueError, match="not a weight"):
        parse_weights("v1:90")


def test_cli_from_weights_and_from_a_status_file(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["route-key", "alice", "bob", "--weights", "v1=90,v2=10", "--seed", SEED]
    )
    assert result.exit_code == 0, result.output
    expected = {k: route_key(k, {"v1": 90, "v2": 10}, SEED) for k in ("alice", "bob")}
    assert result.output == "".join(f"{k}\t{v}\n" for k, v in expected.items())

    now = datetime(2025, 3, 1, tzinfo=UTC)
    status = ReleaseStatus(
        policy="shop/recommender",
        phase=Phase.PROGRESSING,
        release_id="3f2a9c1be004",
        step=3,
        step_started_at=now,
        release_started_at=now,
        split=TrafficSplit.of({"v1": 90, "v2": 10}),
        extra={SEED_KEY: SEED},
    )
    path = tmp_path / "recommender.yaml"
    path.write_text(dump_status(status), encoding="utf-8")
    result = runner.invoke(
        main, ["route-key", "alice", "bob", "--status", str(path), "--output", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == expected

    result = runner.invoke(main, ["route-key", "alice"])
    assert result.exit_code == 2 and "give --status FILE, or --weights and --seed" in result.output
