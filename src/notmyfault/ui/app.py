"""``notmyfault ui``: NotMyfault's window in the terminal (Textual).

Tabs as in NotMyfault v4.6: Crash, Hang, Leak and Dump Configuration, plus
Dump Analysis, where the analysis of the last dump the window made is shown
section by section (the seed's WinDbg session).  Every fault runs in a child
process, so the window survives it; quitting kills and reaps every child the
window started.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    RadioButton,
    RadioSet,
    Sparkline,
    Static,
    TabbedContent,
    TabPane,
    Tabs,
)

from notmyfault.base import format_size, parse_signal, parse_size
from notmyfault.capture import CrashRun, DumpSettings, Verdict, assess, probe
from notmyfault.faults import (
    CATALOG,
    DEFAULT_SIGNAL,
    HANGS,
    LeakRefused,
    Pool,
    check_signal,
    floor_bytes,
    lookup,
    meminfo,
    plan_leak,
)
from notmyfault.render.capture import crash_text, dumpconfig_text
from notmyfault.render.report import DumpReport, dump_report
from notmyfault.ui.jobs import (
    CRASH_TIMEOUT,
    LEAK_BUG,
    ChildJob,
    Children,
    LeakEvent,
    crash_argv,
    hang_argv,
    leak_argv,
    parse_leak_event,
)

TAB_FOCUS = {"crash": "#catalog", "hang": "#hangs", "leak": "#leak-start", "dumpconfig": "#dumpconfig-scroll"}
"""The widget that takes the keys when a tab opens (Dump Analysis: its section tabs)."""
SECTIONS = (
    ("analyze", "Analysis"),
    ("trap", "Registers"),
    ("stack", "Stack"),
    ("vm", "Memory"),
    ("poolused", "Pool"),
    ("search", "Search"),
    ("modules", "Module"),
)
CHART_POINTS = 240
"""How many progress points the leak chart keeps (one minute at the child's 0.25 s)."""
WATCHED_COUNTER = {"paged": "AnonPages", "nonpaged": "Mlocked", "kernel": "SUnreclaim"}
"""The system counter that the chart puts beside the leaked bytes, per pool (Task Manager's view)."""


class NotMyfaultApp(App[None]):
    """The window.

    ``probe_settings`` (the dump settings for a dump directory) and
    ``read_meminfo`` are where it reads the machine from.
    """

    TITLE = "notmyfault"
    SUB_TITLE = "crash, hang and leak on purpose; read the dump"
    CSS = """
    TabPane { padding: 0 1; }
    #catalog, #hangs { height: 1fr; }
    .buttons { height: auto; margin: 1 0 0 0; }
    .buttons Button { margin: 0 2 0 0; }
    .field { width: auto; height: auto; margin: 0 2 0 0; }
    .field Input { width: 16; }
    .field Label { margin: 0 0 0 1; }
    #leak-form { height: auto; }
    #leak-pool { width: auto; }
    .status { height: auto; margin: 1 0 0 0; }
    .chart-label { margin: 1 0 0 0; }
    Sparkline { height: 4; }
    #signal-field { height: auto; margin: 1 0 0 0; }
    #signal-field Input { width: 10; }
    #signal-field Label { margin: 1 1 0 0; }
    #analysis-where { height: auto; margin: 0 0 1 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("1", "show_tab('crash')", "Crash", show=False),
        Binding("2", "show_tab('hang')", "Hang", show=False),
        Binding("3", "show_tab('leak')", "Leak", show=False),
        Binding("4", "show_tab('dumpconfig')", "Dump config", show=False),
        Binding("5", "show_tab('analysis')", "Analysis", show=False),
        Binding("b", "do_bug", "Do Bug"),
        Binding("s", "start_hang", "Start hang"),
        Binding("l", "start_leak", "Leak"),
        Binding("x", "stop", "Stop"),
        Binding("r", "refresh_dumpconfig", "Refresh"),
        Binding("escape", "leave_field", "Leave field", show=False),
    ]
    ACTION_TABS: ClassVar[dict[str, tuple[str, ...]]] = {
        "do_bug": ("crash", "hang", "leak"),
        "start_hang": ("hang",),
        "start_leak": ("leak",),
        "stop": ("hang", "leak"),
        "refresh_dumpconfig": ("dumpconfig",),
    }

    def __init__(
        self,
        dump_dir: str | None = None,
        *,
        probe_settings: Callable[[str | None], DumpSettings] = probe,
        read_meminfo: Callable[[], dict[str, int]] = meminfo,
        open_path: str | None = None,
    ) -> None:
        super().__init__()
        self.dump_dir = dump_dir
        self.open_path = open_path
        """A dump to analyse on the Dump Analysis tab at start (``notmyfault ui DUMP``)."""
        self.probe_settings = probe_settings
        self.read_meminfo = read_meminfo
        self.children_jobs = Children()
        self.report: DumpReport | None = None
        """The analysis on the Dump Analysis tab."""
        self.last_run: CrashRun | None = None
        """How the last child that could leave a dump ended."""
        self.leak_job: ChildJob | None = None
        """The last leak child (its ``name`` is its pool)."""
        self.leak_events: list[LeakEvent] = []

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        """The tabs."""
        yield Header()
        with TabbedContent(initial="crash", id="tabs"):
            with TabPane("Crash [1]", id="crash"):
                yield DataTable(id="catalog", cursor_type="row", zebra_stripes=True)
                with Horizontal(id="signal-field"):
                    yield Label("signal for 'signal':")
                    yield Input(DEFAULT_SIGNAL.name, id="signo")
                with Horizontal(classes="buttons"):
                    yield Button("Do Bug (b)", id="crash-bug", variant="error")
                yield Static("Choose a crash type and press b (Do Bug).", id="crash-status", classes="status")
            with TabPane("Hang [2]", id="hang"):
                yield DataTable(id="hangs", cursor_type="row", zebra_stripes=True)
                with Horizontal(classes="buttons"):
                    yield Button("Start (s)", id="hang-start", variant="warning")
                    yield Button("Stop (x)", id="hang-stop")
                    yield Button("Crash it now (b)", id="hang-bug", variant="error")
                yield Static("No hang is running.", id="hang-status", classes="status")
            with TabPane("Leak [3]", id="leak"):
                with Horizontal(id="leak-form"):
                    with Vertical(classes="field"):
                        yield Label("Leak/second")
                        yield Input("10MB", id="leak-rate")
                    with Vertical(classes="field"):
                        yield Label("Stop at")
                        yield Input("100MB", id="leak-stop")
                    with Vertical(classes="field"):
                        yield Label("Tag")
                        yield Input("Leak", id="leak-tag", max_length=4)
                    with RadioSet(id="leak-pool"):
                        yield RadioButton("Paged", id="pool-paged")
                        yield RadioButton("Nonpaged", id="pool-nonpaged", value=True)
                        yield RadioButton("Kernel", id="pool-kernel")
                with Horizontal(classes="buttons"):
                    yield Button("Leak (l)", id="leak-start", variant="warning")
                    yield Button("Stop (x)", id="leak-stop-button")
                    yield Button("Do Bug (b)", id="leak-bug", variant="error")
                yield Static("", id="leak-status", classes="status")
                yield Label("Leaked bytes", classes="chart-label", id="leak-chart-label")
                yield Sparkline([], id="leak-chart")
                yield Label("Mlocked (system)", classes="chart-label", id="counter-chart-label")
                yield Sparkline([], id="counter-chart")
            with TabPane("Dump Configuration [4]", id="dumpconfig"), VerticalScroll(id="dumpconfig-scroll"):
                yield Static("", id="dumpconfig-verdict", classes="status")
                yield Static("", id="dumpconfig-text", classes="status")
            with TabPane("Dump Analysis [5]", id="analysis"):
                yield Static(
                    "No dump analysed yet: Do Bug on the Crash, Hang or Leak tab.", id="analysis-where"
                )
                with TabbedContent(id="sections"):
                    for key, title in SECTIONS:
                        with TabPane(title, id=f"section-{key}"), VerticalScroll():
                            yield Static("", id=f"text-{key}")
        yield Footer()

    def on_mount(self) -> None:
        """Fill the tables and the tabs that read the machine."""
        catalog = self.query_one("#catalog", DataTable)
        catalog.add_columns("#", "name", "signal", "the dump shows", "blames", "what it does")
        for c in CATALOG:
            o = c.outcome
            catalog.add_row(str(c.number or "-"), c.name, o.signal.name, o.crash_class,
                            c.frame or c.scan_frame or "-", c.summary, key=c.name)  # fmt: skip
        hangs = self.query_one("#hangs", DataTable)
        hangs.add_columns("name", "state", "the dump shows", "what it does")
        for h in HANGS:
            hangs.add_row(h.name, h.state, ", ".join(h.functions), h.summary, key=h.name)
        self._show_leak_idle()
        self.action_refresh_dumpconfig()
        catalog.focus()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop = asyncio.get_running_loop()
            for signo in (signal.SIGTERM, signal.SIGHUP):  # a kill, a closed terminal: quit as 'q' does
                loop.add_signal_handler(signo, self._on_stop_signal)
        if self.open_path is not None:
            # After the first refresh: the tabs' panes must be mounted before one is shown.
            self.call_after_refresh(self.open_dump, self.open_path)

    def open_dump(self, path: str) -> None:
        """Analyse an existing dump on the Dump Analysis tab, as windbg -z FILE opens one."""
        self.say("analysis-where", f"{path}\nanalysing...")
        self.action_show_tab("analysis")

        def work() -> None:
            from notmyfault import DumpError

            try:
                report = dump_report(path)
            except DumpError as e:
                self._from_thread(self.say, "analysis-where", f"{path}\n{e}")
                return
            except Exception as e:  # a bug must show in the window, not leave it waiting
                self._from_thread(self.say, "analysis-where", f"{path}\nthe dump could not be analysed: {e}")
                return
            self._from_thread(self.show_report, report)

        threading.Thread(target=work, name="open-dump", daemon=True).start()

    def _on_stop_signal(self) -> None:
        self.call_later(self.action_quit)

    # ---------------------------------------------------------- common parts

    def _active(self) -> str:
        return self.query_one("#tabs", TabbedContent).active

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show and allow each tab's actions on that tab only."""
        tabs = self.ACTION_TABS.get(action)
        if tabs is None:
            return True
        try:
            return self._active() in tabs
        except Exception:
            return False

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """A new tab: its main widget takes the keys, and the footer shows its actions."""
        if event.tabbed_content.id == "tabs":
            pane = event.pane.id or ""
            # A pane activated while the window is still mounting may not hold its widgets yet.
            with contextlib.suppress(NoMatches):
                if pane == "analysis":
                    self.query_one("#sections").query_one(Tabs).focus()
                elif pane in TAB_FOCUS:
                    self.query_one(TAB_FOCUS[pane]).focus()
        self.refresh_bindings()

    def action_show_tab(self, tab: str) -> None:
        """Switch to ``tab``."""
        self.query_one("#tabs", TabbedContent).active = tab

    def action_leave_field(self) -> None:
        """Leave a text field, so the letter keys act again."""
        self.screen.set_focus(None)

    def say(self, widget_id: str, text: str | Text) -> None:
        """Show ``text`` in a status widget."""
        self.query_one(f"#{widget_id}", Static).update(text)

    def _from_thread(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` on the window's thread; nothing if the window has already closed."""
        if not self.is_running:
            return
        with contextlib.suppress(RuntimeError):
            self.call_from_thread(fn, *args)

    def _start(self, job: ChildJob, settings: DumpSettings, **callbacks: Any) -> None:
        """Run ``job`` in a thread of its own; when its child dies, report and analyse the dump."""
        self.children_jobs.add(job)

        def work() -> None:
            run = job.execute(settings, **callbacks)
            report, problem = None, None
            if run is not None and run.dump is not None:
                try:
                    report = dump_report(run.dump.path, tag=job.tag)
                except Exception as e:  # a dump we cannot read is reported, not fatal
                    problem = f"the dump could not be analysed: {e}"
            self._from_thread(self._finished, job, report, problem)

        threading.Thread(target=work, name=f"notmyfault-{job.kind}", daemon=True).start()

    def _settings(self, status: str) -> DumpSettings | None:
        settings = self.probe_settings(self.dump_dir)
        if not settings.dump_dir_writable:
            self.say(status, f"cannot write the dump directory {settings.dump_dir}: start with --dump-dir")
            return None
        return settings

    def _finished(self, job: ChildJob, report: DumpReport | None, problem: str | None) -> None:
        """A child was reaped: say how it ended and where its dump is; show the analysis."""
        status = f"{job.kind}-status"
        if job.error is not None:
            self.say(status, f"the {job.kind} could not be watched: {job.error}")
            return
        run = job.run
        assert run is not None
        if job.kind == "leak":
            self._leak_ended(job, run)
        if job.kind == "hang" and run.child.signal is None and not run.child.core_dumped:
            self.say(status, f"the hang ended: pid {run.child.pid} exited with code {run.child.exit_code}")
            return
        if job.kind in ("hang", "leak") and run.child.signal == signal.SIGKILL:
            self.say(status, f"stopped: pid {run.child.pid} and all it started were killed")
            return
        if job.kind == "leak" and run.dump is None and run.child.signal is None:
            return  # stopped and freed: _leak_ended said so
        self.last_run = run
        text = crash_text(run)
        if problem:
            text += f"\n{problem}"
        self.say(status, text)
        if report is not None:
            self.show_report(report)

    def show_report(self, report: DumpReport) -> None:
        """Put ``report`` on the Dump Analysis tab and switch to it."""
        self.report = report
        a = report.analysis
        self.say(
            "analysis-where", f"{report.path}\n{a.crash_class}; Probably caused by : {a.probably_caused_by}"
        )
        for key, _title in SECTIONS:
            try:
                text = report.section(key).text
            except KeyError:
                text = "not part of this analysis (the search is for the tag of a leak)"
            self.query_one(f"#text-{key}", Static).update(Text(text))
        self.query_one("#sections", TabbedContent).active = "section-analyze"
        self.action_show_tab("analysis")

    # ------------------------------------------------------------------ crash

    def _selected(self, table_id: str) -> str:
        table = self.query_one(f"#{table_id}", DataTable)
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        assert key is not None
        return key

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Buttons do what their keys do."""
        actions = {
            "crash-bug": self.action_do_bug,
            "hang-start": self.action_start_hang,
            "hang-stop": self.action_stop,
            "hang-bug": self.action_do_bug,
            "leak-start": self.action_start_leak,
            "leak-stop-button": self.action_stop,
            "leak-bug": self.action_do_bug,
        }
        if event.button.id in actions:
            actions[event.button.id]()

    def action_do_bug(self) -> None:
        """Do Bug: crash the chosen type in a child; on Hang and Leak, crash the running child."""
        tab = self._active()
        if tab == "hang":
            self._crash_hang()
        elif tab == "leak":
            self._crash_leak()
        elif tab == "crash":
            self._crash()

    def _crash(self) -> None:
        if self.children_jobs.alive("crash"):
            self.say("crash-status", "a crash is already running; wait for its dump")
            return
        name = self._selected("catalog")
        signo = None
        if lookup(name).takes_signal:
            try:
                signo = parse_signal(self.query_one("#signo", Input).value.strip())
                check_signal(signo)
            except ValueError as e:
                self.say("crash-status", str(e))
                return
        settings = self._settings("crash-status")
        if settings is None:
            return
        label = name if signo is None else f"signal-{signo}"
        job = ChildJob("crash", name, crash_argv(name, signo), label, timeout=CRASH_TIMEOUT)
        self.say("crash-status", f"Do Bug: {name} in a child process ...")
        self._start(job, settings)

    # ------------------------------------------------------------------- hang

    def action_start_hang(self) -> None:
        """Start the chosen hang in a child."""
        if self.children_jobs.alive("hang"):
            self.say("hang-status", "a hang is already running: stop it (x) or crash it (b) first")
            return
        settings = self._settings("hang-status")
        if settings is None:
            return
        name = self._selected("hangs")
        hang = next(h for h in HANGS if h.name == name)
        job = ChildJob("hang", name, hang_argv(name), f"hang-{name}")

        def show(_: object = None) -> None:
            said = [line for line in job.stderr if line.startswith("myfault:")][-4:]
            self.say(
                "hang-status",
                "\n".join(
                    [
                        f"pid {job.pid} hangs ({name}: {hang.summary}); threads in {', '.join(hang.functions)}, "
                        f"state {hang.state}.",
                        *said,
                        "x stops it; b crashes it now (SIGQUIT) and analyses its dump.",
                    ]
                ),
            )

        self.say("hang-status", f"starting the {name} hang ...")
        self._start(
            job,
            settings,
            on_start=lambda pid: self._from_thread(show),
            on_stderr=lambda line: self._from_thread(show),
        )

    def _crash_hang(self) -> None:
        jobs = self.children_jobs.alive("hang")
        if not jobs or not jobs[0].started.wait(5.0) or not jobs[0].send(signal.SIGQUIT):
            self.say("hang-status", "no hang is running: start one (s) first")
            return
        self.say("hang-status", f"crashing pid {jobs[0].pid} (SIGQUIT); waiting for its dump ...")

    def action_stop(self) -> None:
        """Stop the hang (kill it) or the leak (it frees its memory and exits)."""
        tab = self._active()
        if tab == "hang":
            jobs = self.children_jobs.alive("hang")
            if not jobs:
                self.say("hang-status", "no hang is running")
                return
            for j in jobs:
                j.kill()
            self.say("hang-status", "stopping the hang ...")
        elif tab == "leak":
            jobs = self.children_jobs.alive("leak")
            if not jobs:
                self.say("leak-status", "no leak is running")
                return
            for j in jobs:
                j.send(signal.SIGTERM)
            self.say("leak-status", "stopping the leak; its memory is freed ...")

    # ------------------------------------------------------------------- leak

    def _leak_tag(self) -> str:
        return self.query_one("#leak-tag", Input).value or "Leak"

    def _pool_choice(self) -> str:
        pressed = self.query_one("#leak-pool", RadioSet).pressed_button
        return (pressed.id or "pool-nonpaged").removeprefix("pool-") if pressed else "nonpaged"

    def _floor_text(self) -> str:
        info = self.read_meminfo()
        total, available = info.get("MemTotal", 0), info.get("MemAvailable", 0)
        return (
            f"MemAvailable {format_size(available)} of {format_size(total)}; safety floor "
            f"{format_size(floor_bytes(total))}: a leak that would go below it is refused."
        )

    def _show_leak_idle(self) -> None:
        self.say("leak-status", f"No leak is running. l starts one.\n{self._floor_text()}")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a leak field starts the leak."""
        if event.input.id and event.input.id.startswith("leak-"):
            self.action_start_leak()

    def action_start_leak(self) -> None:
        """Start a leak in a child with the tab's rate, limit, tag and pool."""
        if self.children_jobs.alive("leak"):
            self.say("leak-status", "a leak is running: stop it (x) or crash it (b) first")
            return
        pool = self._pool_choice()
        try:
            rate = parse_size(self.query_one("#leak-rate", Input).value)
            stop_at = parse_size(self.query_one("#leak-stop", Input).value)
            plan = plan_leak(Pool(pool), rate, stop_at, self._leak_tag())
        except (ValueError, LeakRefused) as e:
            self.say("leak-status", f"{e}\n{self._floor_text()}")
            return
        settings = self._settings("leak-status")
        if settings is None:
            return
        self.leak_events = []
        self.query_one("#leak-chart", Sparkline).data = []
        self.query_one("#counter-chart", Sparkline).data = []
        counter = WATCHED_COUNTER[pool]
        self.query_one("#leak-chart-label", Label).update(
            f"Leaked bytes ({pool}, tag '{plan.tag}', to {plan.stop_at:,} bytes = {format_size(plan.stop_at)})"
        )
        self.query_one("#counter-chart-label", Label).update(f"{counter} (system, change since the start)")
        argv = leak_argv(pool, plan.rate, plan.stop_at, plan.tag)
        job = ChildJob("leak", pool, argv, f"leak-then-{LEAK_BUG}", tag=plan.tag)
        self.leak_job = job

        def line(raw: bytes) -> None:
            ev = parse_leak_event(raw)
            if ev is not None:
                self._from_thread(self._leak_event, ev)

        self.say("leak-status", f"starting a {pool} leak of {format_size(plan.stop_at)} ...")
        self._start(job, settings, on_stdout=line)

    def _leak_event(self, ev: LeakEvent) -> None:
        """A progress event of the leak child: the chart and the numbers."""
        self.leak_events.append(ev)
        if ev.event == "freed":
            return
        counter = WATCHED_COUNTER[self.leak_job.name if self.leak_job else "nonpaged"]
        base = next((e.counters[counter] for e in self.leak_events if counter in e.counters), 0)
        seen, last = [], base
        for e in self.leak_events[-CHART_POINTS:]:
            if e.event == "freed":
                continue
            last = e.counters.get(counter, last)  # events without counters: the last value seen
            seen.append(float(last - base))
        self.query_one("#leak-chart", Sparkline).data = [
            float(e.leaked) for e in self.leak_events[-CHART_POINTS:] if e.event != "freed"
        ]
        self.query_one("#counter-chart", Sparkline).data = seen
        shown = f"; {counter} {format_size(last)} ({(last - base) / 2**20:+.1f} MiB since the start)"
        state = {"progress": ev.state or "leaking", "limit": "reached its limit"}.get(ev.event, ev.event)
        self.say(
            "leak-status",
            f"{state}: leaked {format_size(ev.leaked)} in {ev.blocks} blocks at {ev.rate / 1e6:.2f} MB/s"
            f"{shown}\nx stops and frees; b crashes the child ({LEAK_BUG}) with the leak in its dump.\n"
            f"{self._floor_text()}",
        )

    def _leak_ended(self, job: ChildJob, run: CrashRun) -> None:
        if run.child.signal is not None:
            return  # crashed (Do Bug) or killed: _finished says so
        freed = next((e.freed for e in reversed(self.leak_events) if e.event == "freed"), None)
        what = f"freed {format_size(freed)}" if freed is not None else f"exit code {run.child.exit_code}"
        lines = [f"the leak ended: {what}", *job.stderr[-2:], self._floor_text()]
        self.say("leak-status", "\n".join(lines))

    def _crash_leak(self) -> None:
        jobs = self.children_jobs.alive("leak")
        if not jobs or not self.leak_events:
            self.say("leak-status", "no leak is running: start one (l) first")
            return
        jobs[0].send(signal.SIGUSR1)
        self.say(
            "leak-status", f"Do Bug: {LEAK_BUG} in the leaking pid {jobs[0].pid}; waiting for its dump ..."
        )

    # -------------------------------------------------------------- dumpconfig

    def action_refresh_dumpconfig(self) -> None:
        """Read the dump configuration again."""
        settings = self.probe_settings(self.dump_dir)
        verdict = assess(settings)
        style = {Verdict.WILL_DUMP: "bold green", Verdict.MAY_DUMP: "bold yellow"}.get(
            verdict.verdict, "bold red"
        )
        self.query_one("#dumpconfig-verdict", Static).update(
            Text(f"{verdict.verdict.value}: {verdict.summary}  (r reads it again)", style=style)
        )
        self.query_one("#dumpconfig-text", Static).update(Text(dumpconfig_text(settings, verdict)))

    # ------------------------------------------------------------------- quit

    async def action_quit(self) -> None:
        """Quit: kill and reap every child the window started, then close."""
        await asyncio.get_running_loop().run_in_executor(None, self.children_jobs.kill_all)
        self.exit()


def run_window(dump_dir: str | None, open_path: str | None = None) -> None:
    """Run the window until it quits (with ``open_path``, showing that dump's analysis first);
    whatever happens, no child is left behind."""
    app = NotMyfaultApp(dump_dir, open_path=open_path)
    try:
        app.run()
    finally:
        app.children_jobs.kill_all()
