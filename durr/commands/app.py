"""``durr app``: serve the Streamlit app (``app/main.py`` of the checkout) on 127.0.0.1.

It runs ``streamlit run app/main.py`` headless, on loopback unless told otherwise, with the
upload limit given both to Streamlit (``server.maxUploadSize``, per file) and to the app
(``DURR_APP_MAX_UPLOAD_MB``, per upload, zip members unpacked), and without usage statistics.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

APP_SCRIPT = Path(__file__).resolve().parents[2] / "app" / "main.py"
DEFAULT_PORT = 8501
DEFAULT_MAX_UPLOAD_MB = 200


def add_arguments(parser) -> None:
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only; "
                             "0.0.0.0 exposes the app to the network)")
    parser.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_UPLOAD_MB,
                        help="largest upload accepted, in MB (default: %(default)s)")
    parser.add_argument("--models", type=Path, default=None,
                        help="folder of model folders to serve (default: $DURR_MODELS or models/ of the checkout)")
    parser.add_argument("--open", action="store_true", help="open a browser tab on start")


def streamlit_command(args, script: Path = APP_SCRIPT, python: str = sys.executable) -> list[str]:
    """The ``streamlit run`` command line ``durr app`` executes."""
    return [python, "-m", "streamlit", "run", str(script),
            "--server.address", str(args.address),
            "--server.port", str(int(args.port)),
            "--server.maxUploadSize", str(int(args.max_upload_mb)),
            "--server.headless", "false" if args.open else "true",
            "--server.fileWatcherType", "none",
            "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false",
            "--client.showErrorDetails", "none",
            "--client.toolbarMode", "viewer",
            "--global.developmentMode", "false"]


def app_environment(args, environ: dict | None = None) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    env["DURR_APP_MAX_UPLOAD_MB"] = str(int(args.max_upload_mb))
    if args.models is not None:
        env["DURR_MODELS"] = str(Path(args.models).resolve())
    return env


def check(args) -> str | None:
    """Why the app cannot start, or None."""
    if importlib.util.find_spec("streamlit") is None:
        return "streamlit is not installed; install the app extra: pip install -e '.[app]'"
    if not APP_SCRIPT.is_file():
        return f"{APP_SCRIPT} not found: the app runs from a source checkout of the project"
    if not 0 < args.port < 65536:
        return f"--port {args.port}: not a port number"
    if args.max_upload_mb < 1:
        return "--max-upload-mb must be at least 1"
    if args.models is not None and not Path(args.models).is_dir():
        return f"--models {args.models}: no such folder"
    return None


def run(args) -> int:
    problem = check(args)
    if problem:
        print(f"durr app: error: {problem}", file=sys.stderr)
        return 2
    host = "localhost" if args.address in ("127.0.0.1", "localhost") else args.address
    print(f"durr app: serving on http://{host}:{args.port} (Ctrl+C to stop)", flush=True)
    process = subprocess.Popen(streamlit_command(args), cwd=APP_SCRIPT.parents[1], env=app_environment(args))
    # SIGTERM to `durr app` stops the server too (Ctrl+C reaches both through the terminal).
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signum))
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
