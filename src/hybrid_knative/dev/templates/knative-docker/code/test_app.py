"""Run with `python3 -m unittest` in code/: starts the app on a free port and asks it."""

import os
import subprocess
import sys
import time
import unittest
import urllib.request


class AppTest(unittest.TestCase):
    def test_says_hello(self) -> None:
        env = {**os.environ, "PORT": "18931", "HOST": "127.0.0.1", "TARGET": "test"}
        proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "app.py")], env=env)
        try:
            for _ in range(100):
                try:
                    with urllib.request.urlopen("http://127.0.0.1:18931/", timeout=1) as resp:
                        self.assertEqual(resp.read(), b"Hello test!\n")
                        return
                except OSError:
                    time.sleep(0.05)
            self.fail("the app did not answer")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    unittest.main()
