// Run with `node --test` in this folder.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { handle, parse, REPLY_TYPE } = require('./index.js');

test('binary mode', () => {
  const headers = { 'ce-id': '1', 'ce-source': '/t', 'ce-type': 'greeting', 'ce-specversion': '1.0',
    'content-type': 'application/json' };
  const [attributes, data] = parse(headers, '{"name": "x"}');
  assert.strictEqual(attributes.type, 'greeting');
  const [replyAttrs, replyData] = handle(attributes, data);
  assert.strictEqual(replyAttrs.type, REPLY_TYPE);
  assert.strictEqual(replyData.hello, 'x');
});

test('not an event', () => {
  assert.throws(() => parse({ 'content-type': 'application/json' }, '{}'));
});
