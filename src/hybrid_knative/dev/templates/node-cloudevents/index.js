// A CloudEvents function: receives events (binary or structured mode) on $PORT and answers with an event.
// Edit handle(). Node.js built-ins only.
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');

const REPLY_TYPE = 'dev.hybrid-knative.reply';

function handle(attributes, data) {
  const name = data && typeof data === 'object' && data.name ? String(data.name) : 'world';
  console.log(`event ${attributes.type} from ${attributes.source} id=${attributes.id}`);
  return [{ type: REPLY_TYPE, source: '/' + (process.env.K_SERVICE || 'function') },
    { hello: name, in_reply_to: attributes.id }];
}

function parse(headers, body) {
  const ctype = headers['content-type'] || '';
  if (ctype.startsWith('application/cloudevents+json')) {
    const event = JSON.parse(body);
    const data = event.data;
    delete event.data;
    return [event, data];
  }
  const attributes = {};
  for (const [k, v] of Object.entries(headers)) if (k.startsWith('ce-')) attributes[k.slice(3)] = v;
  for (const required of ['id', 'source', 'type', 'specversion']) {
    if (!(required in attributes)) throw new Error('not a CloudEvent: ce-id, ce-source, ce-type and ce-specversion headers are required');
  }
  const data = body.length && (ctype.includes('json') || !ctype) ? JSON.parse(body) : body;
  return [attributes, data];
}

function serve() {
  const port = Number(process.env.PORT || 8080);
  const host = process.env.HOST || '0.0.0.0';
  http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('POST a CloudEvent here\n');
        return;
      }
      let attributes, data;
      try {
        [attributes, data] = parse(req.headers, Buffer.concat(chunks).toString());
      } catch (err) {
        res.writeHead(400, { 'Content-Type': 'text/plain' });
        res.end(String(err.message));
        return;
      }
      const [replyAttrs, replyData] = handle(attributes, data);
      const headers = { 'Ce-Specversion': '1.0', 'Ce-Id': crypto.randomUUID(), 'Content-Type': 'application/json' };
      for (const [k, v] of Object.entries(replyAttrs)) headers['Ce-' + k[0].toUpperCase() + k.slice(1)] = v;
      res.writeHead(200, headers);
      res.end(JSON.stringify(replyData));
    });
  }).listen(port, host, () => console.log(`listening on ${host}:${port}`));
}

module.exports = { handle, parse, REPLY_TYPE };
if (require.main === module) serve();
