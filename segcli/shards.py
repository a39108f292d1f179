"""Which shard of a manifest a run uploads: ``--shard K/N``, or ``--shard auto``.

    shard = resolve_shard("auto", count=None)      # a task of a job array
    settings = UploadSettings(..., shard=shard.pair)

With ``auto`` the index K and the count N come from the environment the
scheduler gives each task of a job array (read from each one's documentation):

    scheduler               K                                       N
    Kubernetes Indexed Job  JOB_COMPLETION_INDEX                    --shard-count (it says none)
    AWS Batch array job     AWS_BATCH_JOB_ARRAY_INDEX               AWS_BATCH_JOB_ARRAY_SIZE
    Slurm job array         (SLURM_ARRAY_TASK_ID - _MIN) / _STEP    SLURM_ARRAY_TASK_COUNT
    Google Batch            BATCH_TASK_INDEX                        BATCH_TASK_COUNT

Kubernetes, AWS Batch and Google Batch number tasks 0..N-1. Slurm numbers
them as ``--array`` says: ``--array=1-8`` gives ids 1..8, ``--array=0-14:2``
ids 0, 2, ..., 14. segcli maps a Slurm array exactly when its ids are one
evenly spaced range (any start, any step, any ``%`` limit); a list with gaps
(``--array=1,3,8``) gives no task a known place among the others, so it is
refused rather than guessed (two tasks could take the same shard, or a shard
none).

Every way this can go wrong (no scheduler found, schedulers that disagree, a
value out of range or not a number) is a ``UsageError`` naming the variables
it read and the fix; nothing is sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from segcli.errors import UsageError
from segcli.settings import parse_shard

AUTO = "auto"
#: the variable that gives a Kubernetes Indexed Job its count (the --shard-count option's)
COUNT_VARIABLE = "SEGCLI_SHARD_COUNT"
_FIX = "give --shard K/N instead (K counts from 0)"


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count``, and where that came from (for messages and logs)."""

    index: int
    count: int
    source: str  # "--shard 2/8", or the scheduler and the variables read

    @property
    def pair(self) -> tuple[int, int]:
        """As ``UploadSettings.shard`` takes it."""
        return self.index, self.count

    def describe(self) -> str:
        return f"shard {self.index} of {self.count} ({self.source})"


def resolve_shard(
    text: str | None, *, count: int | None = None, env: Mapping[str, str] | None = None
) -> Shard | None:
    """The shard ``--shard TEXT`` (and ``--shard-count``) name; None: the whole manifest."""
    if text is None or not text.strip():
        if count is not None:
            raise UsageError(
                f"--shard-count {count} (or {COUNT_VARIABLE}) without --shard auto",
                hint="add --shard auto, or leave --shard-count out",
            )
        return None
    if text.strip().lower() == AUTO:
        return shard_from_scheduler(env, count=count)
    k, n = parse_shard(text.strip())
    if count is not None:
        raise UsageError(
            f"--shard {text} already gives the count; --shard-count {count} "
            f"(or {COUNT_VARIABLE}) is for --shard auto",
            hint=f"leave --shard-count out (unset {COUNT_VARIABLE}), or use --shard auto",
        )
    return Shard(k, n, f"--shard {text.strip()}")


def shard_from_scheduler(
    env: Mapping[str, str] | None = None, *, count: int | None = None
) -> Shard:
    """This task's shard, from the job array's scheduler; ``count`` is ``--shard-count``."""
    env = os.environ if env is None else env
    found = [shard for read in _SCHEDULERS if (shard := read(env, count)) is not None]
    if not found:
        names = ", ".join(_INDEX_VARIABLES)
        raise UsageError(
            f"--shard auto: no job array task found in the environment (none of {names} is set)",
            hint="run segcli as a task of a Kubernetes Indexed Job, an AWS Batch array job, "
            f"a Slurm job array or a Google Batch job; elsewhere {_FIX}",
        )
    first = found[0]
    if any(shard.pair != first.pair for shard in found[1:]):
        said = "; ".join(shard.describe() for shard in found)
        raise UsageError(
            f"--shard auto: the environment names more than one job array task, and they "
            f"disagree: {said}",
            hint=f"unset the variables of the scheduler that is not running this task, or {_FIX}",
        )
    return first


def _kubernetes(env: Mapping[str, str], count: int | None) -> Shard | None:
    where = "Kubernetes Indexed Job"
    index = _number(env, "JOB_COMPLETION_INDEX", where)
    if index is None:
        return None
    source = f"{where}: JOB_COMPLETION_INDEX={index}"
    if count is None:
        raise UsageError(
            f"--shard auto: JOB_COMPLETION_INDEX={index} makes this a {where}, and "
            "Kubernetes does not say how many indexes the Job has",
            hint=f"set {COUNT_VARIABLE} in the pod's env to the Job's spec.completions "
            "(or pass --shard-count N)",
        )
    if index >= count:
        raise UsageError(
            f"--shard auto: JOB_COMPLETION_INDEX={index} is not below the shard count "
            f"{count} (--shard-count or {COUNT_VARIABLE})",
            hint=f"make {COUNT_VARIABLE} equal to the Job's spec.completions",
        )
    return Shard(index, count, f"{source}, shard count {count}")


def _aws_batch(env: Mapping[str, str], count: int | None) -> Shard | None:
    return _index_and_size(
        env, count, "AWS Batch array job", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE"
    )


def _google_batch(env: Mapping[str, str], count: int | None) -> Shard | None:
    return _index_and_size(env, count, "Google Batch", "BATCH_TASK_INDEX", "BATCH_TASK_COUNT")


def _index_and_size(
    env: Mapping[str, str], count: int | None, where: str, index_name: str, size_name: str
) -> Shard | None:
    """A scheduler that numbers its tasks 0..size-1 and says the size."""
    index = _number(env, index_name, where)
    if index is None:
        return None
    size = _required(env, size_name, where, index_name)
    source = f"{where}: {index_name}={index}, {size_name}={size}"
    if size < 1 or index >= size:
        raise UsageError(
            f"--shard auto: {source}: the index must be in 0..{size_name}-1",
            hint=f"these come from the scheduler; if they were set by hand, {_FIX}",
        )
    _same_count(count, size, f"{where}'s {size_name}={size}")
    return Shard(index, size, source)


def _slurm(env: Mapping[str, str], count: int | None) -> Shard | None:
    where = "Slurm job array"
    task = _number(env, "SLURM_ARRAY_TASK_ID", where)
    if task is None:
        return None
    first = _required(env, "SLURM_ARRAY_TASK_MIN", where, "SLURM_ARRAY_TASK_ID")
    last = _required(env, "SLURM_ARRAY_TASK_MAX", where, "SLURM_ARRAY_TASK_ID")
    tasks = _required(env, "SLURM_ARRAY_TASK_COUNT", where, "SLURM_ARRAY_TASK_ID")
    step = _number(env, "SLURM_ARRAY_TASK_STEP", where)
    step = 1 if step is None else step
    said = (
        f"SLURM_ARRAY_TASK_ID={task}, SLURM_ARRAY_TASK_MIN={first}, "
        f"SLURM_ARRAY_TASK_MAX={last}, SLURM_ARRAY_TASK_STEP={step}, "
        f"SLURM_ARRAY_TASK_COUNT={tasks}"
    )
    # One evenly spaced range holds exactly COUNT ids from MIN to MAX; anything
    # else (a list with gaps) leaves this task's rank among the others unknown.
    if tasks < 1 or step < 1 or last - first != step * (tasks - 1):
        raise UsageError(
            f"--shard auto: the Slurm array's task ids are not one evenly spaced range "
            f"({said}), so segcli cannot tell this task's place among them",
            hint="submit the array as one range: --array=0-7, --array=1-8 or --array=0-14:2 "
            f"(a %limit is fine); or {_FIX}",
        )
    if not first <= task <= last or (task - first) % step:
        raise UsageError(
            f"--shard auto: SLURM_ARRAY_TASK_ID={task} is not one of the array's ids ({said})",
            hint=f"these come from Slurm; if they were set by hand, {_FIX}",
        )
    _same_count(count, tasks, f"the {where}'s SLURM_ARRAY_TASK_COUNT={tasks}")
    index = (task - first) // step
    source = f"{where}: SLURM_ARRAY_TASK_ID={task} - SLURM_ARRAY_TASK_MIN={first}"
    source += f", step {step}" if step != 1 else ""
    return Shard(index, tasks, f"{source}, SLURM_ARRAY_TASK_COUNT={tasks}")


def _same_count(count: int | None, said: int, whose: str) -> None:
    if count is not None and count != said:
        raise UsageError(
            f"--shard auto: --shard-count {count} (or {COUNT_VARIABLE}) disagrees with {whose}",
            hint=f"leave --shard-count out (unset {COUNT_VARIABLE}): the scheduler says the count",
        )


def _number(env: Mapping[str, str], name: str, where: str) -> int | None:
    """The variable as a whole number >= 0; None when unset or empty."""
    text = env.get(name, "").strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit():
        raise UsageError(
            f"--shard auto: {name}={text!r} is not a whole number ({where})",
            hint=f"these come from the scheduler; if it was set by hand, {_FIX}",
        )
    return int(text)


def _required(env: Mapping[str, str], name: str, where: str, because: str) -> int:
    value = _number(env, name, where)
    if value is None:
        raise UsageError(
            f"--shard auto: {because} is set (a {where}) but {name} is not",
            hint=f"run it as a task of the array, where the scheduler sets both; or {_FIX}",
        )
    return value


_SCHEDULERS: tuple[Callable[[Mapping[str, str], int | None], Shard | None], ...] = (
    _kubernetes,
    _aws_batch,
    _slurm,
    _google_batch,
)
#: what --shard auto looks at, for the message when it finds none
_INDEX_VARIABLES = (
    "JOB_COMPLETION_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
    "SLURM_ARRAY_TASK_ID",
    "BATCH_TASK_INDEX",
)
