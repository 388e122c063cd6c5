"""Start N local processes of a training script, as N machines would run it, to try multi-process
training (Keras' distribution API on JAX) on one machine.

    python examples/launch_local.py --processes 2 -- python examples/distributed_fit.py

Each process gets COLAB_MAGIC_COORDINATOR (localhost:PORT), COLAB_MAGIC_NUM_PROCESSES and
COLAB_MAGIC_PROCESS_ID, which the script passes to keras.distribution.initialize(). Their output is
prefixed with the process id. Ctrl-C, or one process failing, stops them all.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--port", type=int, default=0, help="the coordinator's port (default: a free one)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command each process runs")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.processes < 1:
        parser.error("give the number of processes and, after --, the command to run")
    port = args.port
    if not port:
        with socket.socket() as s:
            s.bind(("localhost", 0))
            port = s.getsockname()[1]
    procs = []
    for i in range(args.processes):
        env = dict(os.environ, COLAB_MAGIC_COORDINATOR=f"localhost:{port}",
                   COLAB_MAGIC_NUM_PROCESSES=str(args.processes), COLAB_MAGIC_PROCESS_ID=str(i))
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))

    def relay(i, proc):
        for line in proc.stdout:
            sys.stdout.write(f"[{i}] {line}")
            sys.stdout.flush()

    threads = [threading.Thread(target=relay, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for t in threads:
        t.start()
    code = 0
    try:
        for p in procs:
            rc = p.wait()
            if rc and not code:
                code = rc
                for other in procs:  # one failed: the others would wait for it forever
                    if other.poll() is None:
                        other.send_signal(signal.SIGTERM)
    except KeyboardInterrupt:
        code = 130
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for t in threads:
            t.join(timeout=5)
    return code


if __name__ == "__main__":
    sys.exit(main())
