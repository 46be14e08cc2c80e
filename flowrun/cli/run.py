"""Commands that run workflows: ``flowrun run`` and ``flowrun resume`` (batches go to cli_batch)."""

from __future__ import annotations

import contextlib
import io
import signal
import sys
from collections.abc import Iterator
from typing import Any

import click

from flowrun.cli import startup
from flowrun.cli.batch_run import check_no_limits, resume_limit_options
from flowrun.cli.common import CONTEXT, MAX_COUNT, Command, emit_json, input_options
from flowrun.errors import RunFailed, RunInterrupted, UsageError
from flowrun.redaction import redact


def _live_printer(enabled: bool = True) -> Any:
    """On a terminal (and ``enabled``): the steps' progress with streamed text; else None."""
    if not (enabled and sys.stderr.isatty()):
        return None
    from flowrun.cli.step_progress import StepProgress

    return StepProgress()


class _RunStdout(io.TextIOBase):
    """``sys.stdout`` during a ``--json`` command, so that stdout holds only the JSON document.

    What the run prints (tools, imported tool modules) goes to stderr. After ``batch()`` (whose
    own code prints the JSON summary) the main thread's writes outside the event loop go to
    stdout again; tools run inside the loop or in worker threads.
    """

    def __init__(self, stdout: Any, stderr: Any) -> None:
        self._stdout, self._stderr, self._main = stdout, stderr, False

    def batch(self) -> None:
        self._main = True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stderr, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return (self._stdout if self._main and _outside_the_run() else self._stderr).write(text)

    def flush(self) -> None:
        self._stdout.flush()
        self._stderr.flush()


def _outside_the_run() -> bool:
    import asyncio
    import threading

    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


@contextlib.contextmanager
def _stdout_for_json(as_json: bool) -> Iterator[_RunStdout | None]:
    """With ``--json``: what the run prints goes to stderr (see ``_RunStdout``)."""
    if not as_json:
        yield None
        return
    router = _RunStdout(sys.stdout, sys.stderr)
    with contextlib.redirect_stdout(router):
        yield router


def _terminate_on_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _last_step_output(result: Any) -> None:
    """A workflow without ``outputs:`` prints its last step's output (the way a shell script's
    last command speaks for it), and says so on stderr; or that there is nothing to print."""
    from flowrun.cli.text import format_outputs

    done = [(sid, step) for sid, step in result.steps.items() if step.status == "succeeded"]
    if not done or done[-1][1].output is None:
        click.echo("no outputs (the workflow declares no outputs:)", err=True)
        return
    sid, step = done[-1]
    click.echo(f"(no outputs: declared; the last step's output, {sid}:)", err=True)
    click.echo(redact(format_outputs({sid: step.output})))


def _report(result: Any, as_json: bool, quiet: bool) -> None:
    """Print a run's outputs and cost report (or its JSON) and fail with exit 1 if it failed."""
    from flowrun.cli.text import format_cost_report, format_outputs

    if as_json:
        emit_json(result.to_json())
    elif not quiet:
        if result.outputs:
            click.echo(redact(format_outputs(result.outputs)))
        elif result.ok:
            _last_step_output(result)
        click.echo(redact(format_cost_report(result)), err=True)
        if result.metrics:
            from flowrun.cli.text import metric_text

            click.echo(redact(f"metrics: {metric_text(result.metrics)}"), err=True)
    if not result.ok:
        raise RunFailed(
            result.error or "the run failed",
            hint=f"completed steps are saved; fix the cause and continue with: flowrun resume {result.run_id}",
        )


@contextlib.contextmanager
def _mock_client(enabled: bool, workflow: Any, batch_api: bool) -> Iterator[Any]:
    """``--mock``: the in-process fake model, or None. The Batch API has no in-process stand-in,
    so ``--mock --via batch-api`` talks to a loopback server whose model is that fake model."""
    if not enabled:
        yield None
        return
    from flowrun.provider.mock import MockClient

    mock = MockClient(workflow)
    if not batch_api:
        yield mock
        return
    from flowrun.provider.client import OpenAIClient
    from flowrun.provider.mock import mock_text
    from flowrun.testing.loopback import LoopbackServer
    from flowrun.testing.replies import Reply

    with LoopbackServer() as server:
        server.default = lambda req: Reply(content=mock_text(req.body or {}, mock.schemas))
        client = OpenAIClient(api_key="sk-mock", base_url=server.url)
        client.mock = True  # type: ignore[attr-defined]  # reported as a mock run, no dollars
        yield client


def _finite_max_cost(ctx: Any, param: Any, value: float | None) -> float | None:
    """click's FloatRange lets NaN and infinity through; a budget must be a finite number."""
    import math

    if value is not None and not math.isfinite(value):
        raise click.BadParameter(
            f"{value!r} is not a budget: give a positive, finite number of dollars"
        )
    return value


def run_options(f: Any) -> Any:
    """Options shared by ``run`` and ``resume``."""
    f = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(
        f
    )
    f = click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (for cron).")(f)
    f = click.option(
        "--max-cost",
        type=click.FloatRange(min=0, min_open=True),
        callback=_finite_max_cost,
        metavar="USD",
        help="Budget cap for this run (overrides budget.max_cost_usd).",
    )(f)
    f = click.option(
        "--prices",
        type=click.Path(dir_okay=False),
        help="A JSON price file that overrides the shipped prices.",
    )(f)
    f = click.option(
        "--cache",
        is_flag=True,
        help="Reuse stored replies to identical requests (for development).",
    )(f)
    return click.option(
        "-v",
        "--verbose",
        is_flag=True,
        expose_value=False,
        callback=_show_calls,
        help="Show each model request and reply on stderr as it happens (step, model, tokens).",
    )(f)


def _show_calls(ctx: click.Context, _param: Any, verbose: bool) -> None:
    """``-v``: the engine's ``flowrun.calls`` log lines on stderr, for this command only."""
    if not verbose:
        return
    import logging

    class ToStderr(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            click.echo(redact(self.format(record)), err=True)

    log = logging.getLogger("flowrun.calls")
    handler = ToStderr()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    def done() -> None:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)

    ctx.call_on_close(done)


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("file", type=click.Path(dir_okay=False))
@input_options
@click.option(
    "--batch",
    "records",
    type=click.Path(dir_okay=False),
    help="Run once per record of this JSONL or CSV file.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="With --batch: where to write one JSON line per record.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=MAX_COUNT),
    default=None,
    help="With --batch: records in flight (default 32).",
)
@click.option(
    "--rpm",
    type=click.IntRange(min=1, max=MAX_COUNT),
    help="With --batch: at most this many requests per minute.",
)
@click.option(
    "--tpm",
    type=click.IntRange(min=1, max=MAX_COUNT),
    help="With --batch: at most this many tokens per minute.",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="INPUT=COLUMN",
    help="With --batch: take an input from another column (also ${data.column}).",
)
@click.option(
    "--resume", "resume_batch", is_flag=True, help="With --batch: skip records already in --output."
)
@click.option(
    "--via",
    type=click.Choice(["live", "batch-api"]),
    default="live",
    show_default=True,
    help="With --batch: live calls, or the OpenAI Batch API (50% price, asynchronous).",
)
@click.option(
    "--mock",
    is_flag=True,
    help="Use an offline fake model (echoes prompts; valid JSON for schemas); costs nothing.",
)
@click.option(
    "--no-overlap",
    is_flag=True,
    help="Exit 1 at once if another run of this workflow is still running (for cron).",
)
@click.option(
    "--no-transcripts",
    is_flag=True,
    help="Do not store what model calls sent and got (for sensitive data).",
)
@run_options
def run(
    file: str,
    pairs: tuple[str, ...],
    inputs_file: str | None,
    records: str | None,
    output: str | None,
    concurrency: int | None,
    rpm: int | None,
    tpm: int | None,
    mapping: tuple[str, ...],
    resume_batch: bool,
    via: str,
    mock: bool,
    no_overlap: bool,
    no_transcripts: bool,
    as_json: bool,
    quiet: bool,
    max_cost: float | None,
    prices: str | None,
    cache: bool,
) -> None:
    """Run a workflow (or a batch of records); print outputs and cost.

    Outputs go to stdout, the cost report to stderr.

    Exit codes: 0 succeeded, 1 the run failed (a step failed, the budget stopped it),
    2 the workflow file, inputs or options are invalid.

    \b
    Examples:
      flowrun run workflows/summarize.yaml -i text=@article.txt
      flowrun run workflows/support-triage.yaml --inputs-file ticket.json --json
      flowrun run workflows/summarize.yaml --batch docs.jsonl --output out.jsonl
    """
    from flowrun.format.inputs import check_one_stdin, parse_cli_inputs, read_inputs_file
    from flowrun.format.loader import load_workflow
    from flowrun.store.locking import workflow_lock

    check_one_stdin(pairs, inputs_file, records)
    mode = _batch_mode(via, records)  # live calls or the Batch API: chosen here, once
    batch_api = mode is not None and mode.batch_api
    options: dict[str, Any] = {"max_cost": max_cost, "prices": prices, "cache": cache}
    if no_transcripts:
        options["transcripts"] = False
    with _stdout_for_json(as_json) as json_stdout:
        wf = load_workflow(file)  # (what its tool modules print on import goes to stderr)
        startup.end(wf, default_client=records is None and not mock)
        from flowrun.api import new_run_id, run_workflow

        if records is None:
            for flag, value in (
                ("--output", output),
                ("--concurrency", concurrency),
                ("--rpm", rpm),
                ("--tpm", tpm),
                ("--map", mapping),
                ("--resume", resume_batch),
                ("--via batch-api", batch_api),
            ):
                if value:
                    raise UsageError(f"{flag} goes with --batch")
        _terminate_on_sigterm()
        with (
            workflow_lock(wf, enabled=no_overlap),
            _mock_client(mock, wf, batch_api) as client,
        ):
            if client is not None:
                options["client"] = client
            if records is not None:
                from flowrun.cli.batch_run import run_batch_command

                if json_stdout is not None:
                    json_stdout.batch()
                run_batch_command(
                    wf,
                    records,
                    output,
                    pairs=pairs,
                    inputs_file=inputs_file,
                    concurrency=concurrency,
                    rpm=rpm,
                    tpm=tpm,
                    mapping=mapping,
                    resume=resume_batch,
                    via=mode,
                    as_json=as_json,
                    quiet=quiet,
                    **options,
                )
                return
            inputs = read_inputs_file(inputs_file) if inputs_file else {}
            inputs.update(parse_cli_inputs(wf.spec, pairs))
            run_id = new_run_id()
            result = _interruptible(
                run_id,
                not (as_json or quiet),
                lambda printer: run_workflow(
                    wf, inputs, on_text=printer, on_step=_on_step(printer), run_id=run_id, **options
                ),
            )
    _report(result, as_json, quiet)


def _batch_mode(via: str, records: str | None) -> Any:
    """The batch mode ``via`` names; None for a single live run, which loads no batch code."""
    if records is None and via == "live":
        return None
    from flowrun.batch.modes import batch_mode

    return batch_mode(via)


def _on_step(printer: Any) -> Any:
    return getattr(printer, "on_step", None)


def _interruptible(run_id: str, live: bool, start: Any) -> Any:
    """``start(printer)``, with streamed text shown live and Ctrl-C as ``RunInterrupted``."""
    printer = _live_printer(live)
    try:
        return start(printer)
    except KeyboardInterrupt:
        raise RunInterrupted(
            f"run {run_id} interrupted; completed steps are saved",
            hint=f"continue it with: flowrun resume {run_id}",
        ) from None
    finally:
        if printer is not None:
            printer.end()


def _import_tools(path: str | None) -> None:
    """Load the workflow at ``path`` (if it is there), importing its tool modules."""
    from pathlib import Path

    from flowrun.format.loader import load_workflow

    if path and Path(path).is_file():
        load_workflow(path)


def _workflow_path_of(run_id: str) -> str | None:
    """The workflow file a stored run (or batch) ran."""
    if run_id.startswith("batch-"):
        from flowrun.store.batches import BatchStore

        with BatchStore() as batches:
            return batches.get(run_id).workflow_path
    from flowrun.store.runs import RunStore

    with RunStore() as store:
        return store.get_run(run_id).workflow_path


@click.command(cls=Command, context_settings=CONTEXT)
@click.argument("run_id")
@click.option(
    "--force", is_flag=True, help="Resume even if the workflow changed under completed steps."
)
@click.option(
    "--no-overlap",
    is_flag=True,
    help="Exit 1 at once if another run of this workflow is still running (for cron).",
)
@resume_limit_options
@run_options
def resume(
    run_id: str,
    force: bool,
    no_overlap: bool,
    concurrency: int | None,
    rpm: int | None,
    tpm: int | None,
    as_json: bool,
    quiet: bool,
    max_cost: float | None,
    prices: str | None,
    cache: bool,
) -> None:
    """Finish a failed or interrupted run, reusing its completed steps.

    \b
    Examples:
      flowrun runs list --limit 5
      flowrun resume 20261125-061502-a1b2c3
      flowrun resume 20261125-061502-a1b2c3 --no-overlap --quiet
    """
    from flowrun.api import resume_run
    from flowrun.store.locking import workflow_lock

    _terminate_on_sigterm()
    options = {
        k: v
        for k, v in {"max_cost": max_cost, "prices": prices, "cache": cache}.items()
        if v is not None
    }
    batch = run_id.startswith("batch-")  # a batch (run --batch): its remaining records
    with _stdout_for_json(as_json) as json_stdout:
        path = _workflow_path_of(run_id) if (no_overlap or (batch and as_json)) else None
        with workflow_lock(path, enabled=no_overlap and path is not None):
            if batch:
                from flowrun.cli.batch_run import resume_batch_command

                if json_stdout is not None:
                    _import_tools(path)  # what they print on import goes to stderr
                    json_stdout.batch()
                limits = {"concurrency": concurrency, "rpm": rpm, "tpm": tpm}
                resume_batch_command(run_id, as_json=as_json, quiet=quiet, **options, **limits)
                return
            check_no_limits(concurrency=concurrency, rpm=rpm, tpm=tpm)
            result = _interruptible(
                run_id,
                not (as_json or quiet),
                lambda printer: resume_run(
                    run_id, force=force, on_text=printer, on_step=_on_step(printer), **options
                ),
            )
    _report(result, as_json, quiet)
