// Run with `node --test` in this folder.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { handle } = require('./index.js');

test('greets by name', () => {
  const [status, body] = handle('POST', '/', '{"name": "x"}');
  assert.strictEqual(status, 200);
  assert.strictEqual(body.hello, 'x');
});

test('bad JSON is a 400', () => {
  assert.strictEqual(handle('POST', '/', '{')[0], 400);
});
