// An HTTP function. Knative sends requests to $PORT; edit handle(). Node.js built-ins only.
'use strict';
const http = require('node:http');

function handle(method, path, body) {
  let name = 'world';
  if (body.length) {
    try {
      name = String(JSON.parse(body).name ?? name);
    } catch {
      return [400, { error: 'send JSON like {"name": "x"}' }];
    }
  }
  return [200, { hello: name, method, path }];
}

function serve() {
  const port = Number(process.env.PORT || 8080);
  const host = process.env.HOST || '0.0.0.0';
  http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const [status, payload] = handle(req.method, req.url, Buffer.concat(chunks).toString());
      const text = JSON.stringify(payload);
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
      console.log(`${req.method} ${req.url} -> ${status}`);
    });
  }).listen(port, host, () => console.log(`listening on ${host}:${port}`));
}

module.exports = { handle };
if (require.main === module) serve();
