"""System metrics sampling and job context: what the machine and the job looked like during a run.

``SystemSampler(sink, interval)`` runs a daemon thread that calls ``sink(ts, metrics)`` with one flat
dict of numbers right after ``start()`` and then every ``interval`` seconds until ``stop()``.
``sample()`` takes one sample directly. ``job_context()`` describes the job once, for the run's
metadata.

What it promises
----------------
- **Never blocks training.** The sampler shares no lock with ``log``; its only lock guards its own
  counters. A sink exception is caught, reported once on stderr, and sampling goes on.
- **Cheap.** One ``sample()`` reads a handful of small /proc files and calls ``os.statvfs``
  (about 0.2 ms here; ``tests/console/bench_console.py`` measures it), far under 1% of one core at
  the default 15 s. With a GPU, NVML calls are microseconds; the nvidia-smi fallback costs one
  process spawn per sample, still well under 1% at 15 s.
- **Keys** (absent when unavailable on this platform, never raised):
  ``cpu`` process CPU in % of one core since the previous sample (first sample: since the process
  started); ``proc.cpu.threads``; ``proc.memory.rssMB``; ``proc.memory.percent`` (RSS / total RAM);
  ``memory_percent`` (system RAM in use, i.e. not available); ``proc.memory.availableMB`` (system
  RAM available); ``disk.<mount>.usagePercent`` and ``disk.<mount>.usageGB`` for the filesystem
  holding ``path`` (``<mount>`` is its mount point, e.g. ``disk./.usagePercent``, as wandb names it);
  ``disk.in``/``disk.out`` MB read/written by the whole machine's physical disks since the sampler
  was made; ``network.recv``/``network.sent`` bytes over all interfaces but loopback since the
  sampler was made; per GPU ``gpu.<i>.gpu`` (utilisation %), ``gpu.<i>.memory`` (memory-controller
  utilisation %), ``gpu.<i>.memoryAllocated`` (% of its memory in use), ``gpu.<i>.memoryUsedMB``,
  ``gpu.<i>.temp`` (deg C), ``gpu.<i>.powerWatts``. MB here means 2**20 bytes, GB 2**30.
- **GPUs.** NVML through ctypes when ``libnvidia-ml.so.1`` loads (that is the library pynvml wraps,
  so no Python package is needed); otherwise ``nvidia-smi`` (the ``nvidia_smi`` argument, else found
  on PATH once, at construction). An explicit ``nvidia_smi`` wins over NVML, so tests can fake it.
  A missing nvidia-smi is not probed again; one that fails three samples in a row is given up.
- **Process CPU/memory** come from ``/proc/<pid>`` on Linux; elsewhere from psutil if it happens to
  be importable (it is not a dependency), else those keys are absent.

``job_context()`` never raises and typically takes a few ms: host, pid, Python, executable, platform,
argv, cwd, user, versions of a few packages it has imported, git commit/branch/dirty state (one ``git status`` with a
short timeout, only inside a work tree), the SLURM variables as a nested ``slurm`` dict and
``cuda_visible_devices`` (each only when set).

Imports: stdlib only (psutil and NVML optionally, when present).
"""

from __future__ import annotations

import ctypes
import getpass
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from wandblite.vocab import PROCESS_RSS_KEY

__all__ = ["SystemSampler", "SystemSink", "job_context"]

SystemSink = Callable[[float, dict], None]

_MB = 1024.0 * 1024.0
_GB = _MB * 1024.0
_SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's sector size
_NVIDIA_SMI_TIMEOUT_S = 5.0
_NVIDIA_SMI_MAX_FAILURES = 3
_GIT_TIMEOUT_S = 2.0


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _mount_point(path: str) -> str:
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _physical_disks() -> set[str] | None:
    """Names of whole physical block devices; partitions, loop, ram and dm devices would double-count."""
    try:
        names = os.listdir("/sys/block")
    except OSError:
        return None
    physical = {n for n in names if os.path.exists(f"/sys/block/{n}/device")}
    return physical or {n for n in names if not n.startswith(("loop", "ram", "zram", "dm-", "md"))}


def _disk_io_bytes(disks: set[str] | None) -> tuple[int, int] | None:
    text = _read("/proc/diskstats")
    if text is None or disks is None:
        return None
    read = written = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 10 and fields[2] in disks:
            read += int(fields[5]) * _SECTOR_BYTES
            written += int(fields[9]) * _SECTOR_BYTES
    return read, written


def _net_bytes() -> tuple[int, int] | None:
    text = _read("/proc/net/dev")
    if text is None:
        return None
    recv = sent = 0
    for line in text.splitlines()[2:]:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() == "lo" or len(fields) < 9:
            continue
        recv += int(fields[0])
        sent += int(fields[8])
    return recv, sent


def _meminfo_kb() -> dict[str, int]:
    text = _read("/proc/meminfo") or ""
    wanted = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached"):
            wanted[key] = int(rest.split()[0])
    return wanted


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def parse_nvidia_smi_csv(text: str) -> dict[str, float]:
    """Parse ``nvidia-smi --query-gpu=<_NVIDIA_SMI_FIELDS> --format=csv,noheader,nounits`` output."""
    metrics: dict[str, float] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 7 or not cells[0].isdigit():
            continue
        i = int(cells[0])
        util, mem_util, used, total, temp, power = (_float_or_none(c) for c in cells[1:7])
        _put_gpu(metrics, i, util, mem_util, used, total, temp, power)
    return metrics


def _put_gpu(
    metrics: dict[str, float],
    i: int,
    util: float | None,
    mem_util: float | None,
    used_mb: float | None,
    total_mb: float | None,
    temp: float | None,
    power_w: float | None,
) -> None:
    prefix = f"gpu.{i}."
    if util is not None:
        metrics[prefix + "gpu"] = util
    if mem_util is not None:
        metrics[prefix + "memory"] = mem_util
    if used_mb is not None:
        metrics[prefix + "memoryUsedMB"] = used_mb
        if total_mb:
            metrics[prefix + "memoryAllocated"] = 100.0 * used_mb / total_mb
    if temp is not None:
        metrics[prefix + "temp"] = temp
    if power_w is not None:
        metrics[prefix + "powerWatts"] = power_w


_NVIDIA_SMI_FIELDS = (
    "index,utilization.gpu,utilization.memory,memory.used,memory.total,temperature.gpu,power.draw"
)


class _NvmlUtilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class _NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class _Nvml:
    """The few NVML calls we need, through ctypes. Constructing raises OSError when NVML is absent."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libnvidia-ml.so.1")
        if self.lib.nvmlInit_v2() != 0:
            raise OSError("nvmlInit_v2 failed")
        count = ctypes.c_uint()
        if self.lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            raise OSError("nvmlDeviceGetCount_v2 failed")
        self.handles = []
        for i in range(count.value):
            handle = ctypes.c_void_p()
            if self.lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)) == 0:
                self.handles.append((i, handle))

    def sample(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for i, handle in self.handles:
            util, mem, temp, power = _NvmlUtilization(), _NvmlMemory(), ctypes.c_uint(), ctypes.c_uint()
            ok_util = self.lib.nvmlDeviceGetUtilizationRates(handle, ctypes.byref(util)) == 0
            ok_mem = self.lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(mem)) == 0
            ok_temp = self.lib.nvmlDeviceGetTemperature(handle, 0, ctypes.byref(temp)) == 0  # 0: the GPU die
            ok_power = self.lib.nvmlDeviceGetPowerUsage(handle, ctypes.byref(power)) == 0  # milliwatts
            _put_gpu(
                metrics,
                i,
                float(util.gpu) if ok_util else None,
                float(util.memory) if ok_util else None,
                mem.used / _MB if ok_mem else None,
                mem.total / _MB if ok_mem else None,
                float(temp.value) if ok_temp else None,
                power.value / 1000.0 if ok_power else None,
            )
        return metrics


class SystemSampler:
    """Samples process, machine and GPU figures; a daemon thread hands them to ``sink``."""

    def __init__(
        self,
        sink: SystemSink,
        interval: float = 15.0,
        pid: int | None = None,
        path: str = ".",
        nvidia_smi: str | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, not {interval}")
        self.sink = sink
        self.interval = interval
        self.pid = pid if pid is not None else os.getpid()
        self.path = path
        self._lock = threading.Lock()  # only between sample() callers; never taken by log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False
        self._clock_ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._page_size = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._has_proc = os.path.exists(f"/proc/{self.pid}/stat")
        self._psutil: Any = None
        if not self._has_proc:
            try:
                import psutil  # optional: only where /proc is missing

                self._psutil = psutil.Process(self.pid)
            except Exception:  # noqa: BLE001 - no psutil: those keys are simply absent
                self._psutil = None
        self._mount = _mount_point(path)
        self._disks = _physical_disks()
        self._disk_base = _disk_io_bytes(self._disks)
        self._net_base = _net_bytes()
        # CPU baseline: None means "the first sample reports the average since process start".
        self._last_cpu: tuple[float, float] | None = None
        self._nvml: _Nvml | None = None
        self._nvidia_smi: str | None = None
        self._smi_failures = 0
        if nvidia_smi is not None:
            self._nvidia_smi = nvidia_smi
        else:
            try:
                self._nvml = _Nvml()
            except (OSError, AttributeError):
                self._nvidia_smi = shutil.which("nvidia-smi")

    # -- thread ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="wandblite-system", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        if thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                metrics = self.sample()
                if not self._stop.is_set():
                    self.sink(time.time(), metrics)
            except Exception as exc:  # noqa: BLE001 - a failing sample or sink must not end sampling
                self._warn_once(exc)
            self._stop.wait(self.interval)

    def _warn_once(self, exc: BaseException) -> None:
        if self._warned:
            return
        self._warned = True
        try:
            sys.stderr.write(
                f"wandblite: system metrics could not be recorded ({type(exc).__name__}: {exc}); "
                "training goes on, sampling keeps trying. This warning is shown once.\n"
            )
        except Exception:  # noqa: BLE001, S110 - nowhere left to report to
            pass

    # -- one sample -------------------------------------------------------------------------------

    def sample(self) -> dict[str, float]:
        """One flat dict of metrics (see the module docstring for keys and units)."""
        with self._lock:
            metrics: dict[str, float] = {}
            for part in (self._process, self._memory, self._disk, self._network, self._gpus):
                try:
                    part(metrics)
                except Exception:  # noqa: BLE001, S112 - one unreadable source must not hide the others
                    continue
            return metrics

    def _process(self, m: dict[str, float]) -> None:
        now = time.monotonic()
        if self._has_proc:
            stat = _read(f"/proc/{self.pid}/stat")
            if stat is None:
                return
            # The command name (field 2) may hold spaces and parentheses: split after its last ")".
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu_s = (int(fields[11]) + int(fields[12])) / self._clock_ticks  # utime + stime
            m["proc.cpu.threads"] = float(fields[17])
            rss = int(fields[21]) * self._page_size
            if self._last_cpu is None:
                uptime = float((_read("/proc/uptime") or "0").split()[0])
                started = int(fields[19]) / self._clock_ticks
                last = (now - max(uptime - started, 1e-9), 0.0)
            else:
                last = self._last_cpu
        elif self._psutil is not None:
            times = self._psutil.cpu_times()
            cpu_s = times.user + times.system
            m["proc.cpu.threads"] = float(self._psutil.num_threads())
            rss = self._psutil.memory_info().rss
            last = self._last_cpu or (now - max(time.time() - self._psutil.create_time(), 1e-9), 0.0)
        else:
            return
        wall = now - last[0]
        if wall > 0:
            m["cpu"] = 100.0 * (cpu_s - last[1]) / wall
        self._last_cpu = (now, cpu_s)
        m[PROCESS_RSS_KEY] = rss / _MB
        total_kb = self._total_kb()
        if total_kb:
            m["proc.memory.percent"] = 100.0 * rss / (total_kb * 1024.0)

    _cached_total_kb: int | None = None

    def _total_kb(self) -> int | None:
        if self._cached_total_kb is None:
            self._cached_total_kb = _meminfo_kb().get("MemTotal")
        return self._cached_total_kb

    def _memory(self, m: dict[str, float]) -> None:
        info = _meminfo_kb()
        total = info.get("MemTotal")
        if not total:
            return
        available = info.get("MemAvailable")
        if available is None:  # kernels before 3.14
            available = info.get("MemFree", 0) + info.get("Buffers", 0) + info.get("Cached", 0)
        m["memory_percent"] = 100.0 * (total - available) / total
        m["proc.memory.availableMB"] = available / 1024.0

    def _disk(self, m: dict[str, float]) -> None:
        st = os.statvfs(self.path)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        avail = st.f_bavail * st.f_frsize
        if used + avail > 0:
            # As df computes it: blocks reserved for root count as neither used nor available.
            m[f"disk.{self._mount}.usagePercent"] = 100.0 * used / (used + avail)
        m[f"disk.{self._mount}.usageGB"] = used / _GB
        io = _disk_io_bytes(self._disks)
        if io is not None and self._disk_base is not None:
            m["disk.in"] = (io[0] - self._disk_base[0]) / _MB
            m["disk.out"] = (io[1] - self._disk_base[1]) / _MB

    def _network(self, m: dict[str, float]) -> None:
        net = _net_bytes()
        if net is not None and self._net_base is not None:
            m["network.recv"] = float(net[0] - self._net_base[0])
            m["network.sent"] = float(net[1] - self._net_base[1])

    def _gpus(self, m: dict[str, float]) -> None:
        if self._nvml is not None:
            m.update(self._nvml.sample())
            return
        if self._nvidia_smi is None:
            return
        try:
            done = subprocess.run(
                [self._nvidia_smi, f"--query-gpu={_NVIDIA_SMI_FIELDS}", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=_NVIDIA_SMI_TIMEOUT_S,
                check=False,
            )
            ok = done.returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if not ok:
            self._smi_failures += 1
            if self._smi_failures >= _NVIDIA_SMI_MAX_FAILURES:
                self._nvidia_smi = None  # broken driver or missing binary: stop paying for the spawn
            return
        self._smi_failures = 0
        m.update(parse_nvidia_smi_csv(done.stdout))


# -- job context --------------------------------------------------------------------------------

_SLURM_VARS = (
    "SLURM_JOB_ID",
    "SLURM_JOB_NAME",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_JOB_NODELIST",
    "SLURM_JOB_NUM_NODES",
    "SLURM_NODEID",
    "SLURMD_NODENAME",
    "SLURM_RESTART_COUNT",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_NTASKS",
    "SLURM_STEP_ID",
    "SLURM_JOB_PARTITION",
    "SLURM_JOB_ACCOUNT",
    "SLURM_CLUSTER_NAME",
    "SLURM_SUBMIT_DIR",
    "SLURM_CPUS_PER_TASK",
    "SLURM_GPUS_ON_NODE",
)

_PACKAGES = ("wandblite", "numpy", "torch", "jax", "tensorflow", "msgpack")


def _slurm() -> dict[str, str]:
    """SLURM variables, keyed without the prefix and lower-cased: ``job_id``, ``restart_count``..."""
    found = {}
    for var in _SLURM_VARS:
        value = os.environ.get(var)
        if value is not None:
            found[var.split("_", 1)[1].lower() if var.startswith("SLURM_") else var.lower()] = value
    return found


def _git(cwd: str) -> dict[str, Any] | None:
    """Commit, branch and dirty state of the work tree holding ``cwd``; None outside one or on any failure."""
    # Look for a .git first: spawning git outside a repository is the common case and pure waste.
    here = os.path.abspath(cwd)
    while not os.path.exists(os.path.join(here, ".git")):
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
            # Do not take index.lock: a user's concurrent git command must never fail because of us.
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    info: dict[str, Any] = {"root": here, "commit": None, "branch": None, "dirty": False}
    for line in done.stdout.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            info["commit"] = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            info["branch"] = None if head == "(detached)" else head
        elif line and not line.startswith("#"):
            info["dirty"] = True
    return info


def _package_versions() -> dict[str, str]:
    """Versions of the packages of interest that this process has imported.

    Read from the imported modules, not importlib.metadata: importing that and scanning
    site-packages costs tens of ms, and a package the job never imported says little about it.
    """
    versions = {}
    for name in _PACKAGES:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module is not None else None
        if isinstance(version, str):
            versions[name] = version
    return versions


def job_context(cwd: str | None = None) -> dict[str, Any]:
    """Describe this job for the run's metadata. Never raises; a part that cannot be read is left out."""
    ctx: dict[str, Any] = {}

    def put(key: str, get: Callable[[], Any]) -> None:
        try:
            value = get()
        except Exception:  # noqa: BLE001 - context is best effort; a missing part is left out
            return
        if value is not None:
            ctx[key] = value

    here = cwd
    if here is None:
        try:
            here = os.getcwd()
        except OSError:  # the directory was deleted under us
            here = None
    uname = platform.uname()
    put("host", socket.gethostname)
    put("pid", os.getpid)
    put("python", platform.python_version)
    put("python_implementation", platform.python_implementation)
    put("executable", lambda: sys.executable)
    # Built from uname rather than platform.platform(), which scans the interpreter binary for libc.
    put("platform", lambda: f"{uname.system}-{uname.release}-{uname.machine}")
    put("args", lambda: list(sys.argv))
    put("cwd", lambda: here)
    put("user", getpass.getuser)
    put("packages", _package_versions)
    if here is not None:
        put("git", lambda: _git(here))
    slurm = _slurm()
    if slurm:
        ctx["slurm"] = slurm
    put("cuda_visible_devices", lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
    return ctx
