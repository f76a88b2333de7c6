"""Run with `python3 -m unittest` in this folder: checks the handler without a server."""

import json
import unittest

from func import handle


class HandleTest(unittest.TestCase):
    def test_greets_by_name(self) -> None:
        status, _, body = handle("POST", "/", b'{"name": "x"}')
        self.assertEqual((status, json.loads(body)["hello"]), (200, "x"))

    def test_bad_json_is_a_400(self) -> None:
        self.assertEqual(handle("POST", "/", b"{")[0], 400)


if __name__ == "__main__":
    unittest.main()
