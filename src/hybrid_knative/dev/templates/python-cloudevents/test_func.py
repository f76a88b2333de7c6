"""Run with `python3 -m unittest` in this folder: checks parsing and the handler without a server."""

import unittest

from func import REPLY_TYPE, handle, parse


class CloudEventTest(unittest.TestCase):
    def test_binary_mode(self) -> None:
        headers = {"ce-id": "1", "ce-source": "/t", "ce-type": "greeting", "ce-specversion": "1.0",
                   "content-type": "application/json"}
        attributes, data = parse(headers, b'{"name": "x"}')
        self.assertEqual((attributes["type"], data), ("greeting", {"name": "x"}))
        reply = handle(attributes, data)
        self.assertIsNotNone(reply)
        assert reply is not None
        self.assertEqual((reply[0]["type"], reply[1]["hello"]), (REPLY_TYPE, "x"))

    def test_not_an_event(self) -> None:
        with self.assertRaises(ValueError):
            parse({"content-type": "application/json"}, b"{}")


if __name__ == "__main__":
    unittest.main()
