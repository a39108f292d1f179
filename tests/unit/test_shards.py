"""--shard auto: each scheduler's variables, as its documentation defines them, to shard K of N."""

from __future__ import annotations

import pytest

from segcli.errors import UsageError
from segcli.shards import resolve_shard, shard_from_scheduler


def pair(env: dict[str, str], count: int | None = None) -> tuple[int, int]:
    return shard_from_scheduler(env, count=count).pair


def refused(env: dict[str, str], count: int | None = None) -> UsageError:
    with pytest.raises(UsageError) as caught:
        shard_from_scheduler(env, count=count)
    assert caught.value.hint, "every refusal says what to do"
    return caught.value


def slurm(task: int, first: int, last: int, count: int, step: int | None = 1) -> dict[str, str]:
    env = {
        "SLURM_ARRAY_JOB_ID": "4242",
        "SLURM_ARRAY_TASK_ID": str(task),
        "SLURM_ARRAY_TASK_MIN": str(first),
        "SLURM_ARRAY_TASK_MAX": str(last),
        "SLURM_ARRAY_TASK_COUNT": str(count),
    }
    if step is not None:
        env["SLURM_ARRAY_TASK_STEP"] = str(step)
    return env


def test_kubernetes_gives_the_index_and_the_count_comes_from_segcli() -> None:
    assert pair({"JOB_COMPLETION_INDEX": "3"}, count=8) == (3, 8)
    assert pair({"JOB_COMPLETION_INDEX": "0"}, count=1) == (0, 1)


def test_kubernetes_without_a_count_says_to_set_it() -> None:
    error = refused({"JOB_COMPLETION_INDEX": "3"})
    assert "JOB_COMPLETION_INDEX=3" in error.message
    assert "SEGCLI_SHARD_COUNT" in str(error.hint) and "spec.completions" in str(error.hint)


def test_kubernetes_index_at_or_past_the_count_is_refused() -> None:
    error = refused({"JOB_COMPLETION_INDEX": "8"}, count=8)
    assert "JOB_COMPLETION_INDEX=8" in error.message and "8" in error.message


def test_aws_batch_index_and_size() -> None:
    env = {"AWS_BATCH_JOB_ARRAY_INDEX": "9", "AWS_BATCH_JOB_ARRAY_SIZE": "10"}
    assert pair(env) == (9, 10)
    shard = shard_from_scheduler(env)
    assert "AWS_BATCH_JOB_ARRAY_INDEX=9" in shard.source
    assert "AWS_BATCH_JOB_ARRAY_SIZE=10" in shard.source


def test_aws_batch_without_its_size_names_the_missing_variable() -> None:
    error = refused({"AWS_BATCH_JOB_ARRAY_INDEX": "1"})
    assert "AWS_BATCH_JOB_ARRAY_SIZE" in error.message


def test_google_batch_index_and_count() -> None:
    assert pair({"BATCH_TASK_INDEX": "2", "BATCH_TASK_COUNT": "3"}) == (2, 3)
    error = refused({"BATCH_TASK_INDEX": "3", "BATCH_TASK_COUNT": "3"})
    assert "BATCH_TASK_INDEX=3" in error.message and "BATCH_TASK_COUNT=3" in error.message


def test_slurm_ids_count_from_the_arrays_minimum() -> None:
    # --array=1-4: ids 1..4 are shards 0..3 of 4
    assert [pair(slurm(t, 1, 4, 4)) for t in (1, 2, 3, 4)] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    # --array=0-3, and a lone task
    assert pair(slurm(0, 0, 3, 4)) == (0, 4)
    assert pair(slurm(7, 7, 7, 1)) == (0, 1)


def test_slurm_steps_map_exactly() -> None:
    # --array=1-7:2: ids 1, 3, 5, 7
    assert [pair(slurm(t, 1, 7, 4, step=2)) for t in (1, 3, 5, 7)] == [
        (0, 4),
        (1, 4),
        (2, 4),
        (3, 4),
    ]
    # --array=0-15:4 (ids 0, 4, 8, 12): Slurm's MAX is the highest id, 12
    assert pair(slurm(8, 0, 12, 4, step=4)) == (2, 4)


def test_slurm_without_a_step_variable_is_a_plain_range() -> None:
    assert pair(slurm(5, 3, 6, 4, step=None)) == (2, 4)


def test_slurm_lists_with_gaps_are_refused_rather_than_guessed() -> None:
    # --array=1,3,8: min 1, max 8, 3 tasks; no step spaces them evenly
    error = refused(slurm(3, 1, 8, 3))
    assert "not one evenly spaced range" in error.message
    assert "SLURM_ARRAY_TASK_MAX=8" in error.message
    assert "--array=" in str(error.hint)
    # --array=1-7:2,20 with the step Slurm gives a regular range
    refused(slurm(20, 1, 20, 5, step=2))


def test_a_slurm_id_off_the_step_is_refused() -> None:
    error = refused(slurm(4, 1, 7, 4, step=2))
    assert "SLURM_ARRAY_TASK_ID=4 is not one of the array's ids" in error.message


def test_slurm_needs_its_minimum_maximum_and_count() -> None:
    for missing in ("SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_COUNT"):
        env = slurm(2, 1, 4, 4)
        del env[missing]
        assert missing in refused(env).message


def test_values_that_are_not_whole_numbers_are_named() -> None:
    for text in ("-1", "1.5", "two", "٣"):
        error = refused({"AWS_BATCH_JOB_ARRAY_INDEX": text, "AWS_BATCH_JOB_ARRAY_SIZE": "4"})
        assert f"AWS_BATCH_JOB_ARRAY_INDEX={text!r}" in error.message


def test_no_scheduler_names_every_variable_looked_at() -> None:
    error = refused({"PATH": "/usr/bin", "JOB_COMPLETION_INDEX": ""})
    for name in (
        "JOB_COMPLETION_INDEX",
        "AWS_BATCH_JOB_ARRAY_INDEX",
        "SLURM_ARRAY_TASK_ID",
        "BATCH_TASK_INDEX",
    ):
        assert name in error.message
    assert "--shard K/N" in str(error.hint)


def test_schedulers_that_agree_are_one_shard_and_those_that_disagree_are_refused() -> None:
    agree = {"JOB_COMPLETION_INDEX": "2", "BATCH_TASK_INDEX": "2", "BATCH_TASK_COUNT": "4"}
    assert pair(agree, count=4) == (2, 4)
    disagree = {
        **slurm(1, 1, 4, 4),
        "AWS_BATCH_JOB_ARRAY_INDEX": "1",
        "AWS_BATCH_JOB_ARRAY_SIZE": "4",
    }
    error = refused(disagree)
    assert "disagree" in error.message
    assert "shard 1 of 4" in error.message and "shard 0 of 4" in error.message


def test_a_shard_count_that_contradicts_the_scheduler_is_refused() -> None:
    error = refused({"BATCH_TASK_INDEX": "0", "BATCH_TASK_COUNT": "4"}, count=8)
    assert "--shard-count 8" in error.message and "BATCH_TASK_COUNT=4" in error.message
    assert pair({"BATCH_TASK_INDEX": "0", "BATCH_TASK_COUNT": "4"}, count=4) == (0, 4)


def test_resolve_shard_keeps_k_of_n_and_the_whole_manifest() -> None:
    assert resolve_shard(None) is None
    shard = resolve_shard("2/8")
    assert shard is not None and shard.pair == (2, 8) and shard.source == "--shard 2/8"
    auto = resolve_shard("auto", env={"JOB_COMPLETION_INDEX": "1"}, count=2)
    assert auto is not None and auto.pair == (1, 2)
    assert "JOB_COMPLETION_INDEX=1" in auto.describe()


def test_a_shard_count_is_only_for_auto() -> None:
    with pytest.raises(UsageError, match="--shard-count 4"):
        resolve_shard(None, count=4)
    with pytest.raises(UsageError, match="already gives the count"):
        resolve_shard("1/4", count=4)
    with pytest.raises(UsageError, match="write K/N"):
        resolve_shard("automatic")
