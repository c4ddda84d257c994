#!/usr/bin/env python3
"""A steady trickle of reads: GET URL every INTERVAL seconds for DURATION seconds (or until
SIGTERM); prints the counts and exits 1 if any read failed (any answer but 200, or no answer).

  trickle.py URL DURATION [INTERVAL]
"""
import signal
import sys
import time
import urllib.error
import urllib.request

url, duration = sys.argv[1], float(sys.argv[2])
interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05
ok, failed = 0, []
end = time.monotonic() + duration


def stop(*_):
    global end
    end = 0.0


signal.signal(signal.SIGTERM, stop)
while time.monotonic() < end:
    try:
        with urllib.request.urlopen(url, timeout=5) as res:
            res.read()
            ok += 1
    except (urllib.error.URLError, OSError) as e:
        failed.append(f"{time.strftime('%H:%M:%S')} {e}")
    time.sleep(interval)
print(f"trickle: {ok} reads ok, {len(failed)} failed")
for f in failed[:10]:
    print("  " + f)
sys.exit(1 if failed or ok == 0 else 0)
