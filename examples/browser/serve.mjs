// Tiny demo server for this page: static files, the pusher-js / Echo browser builds, and a
// Laravel-like POST /broadcasting/auth that signs with the official Node SDK (npm `pusher`).
// Used by protocol-tests/clients (which passes its own SDK instance), or by hand:
//   cd protocol-tests/clients && node ../../examples/browser/serve.mjs   (see README.md there)
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const here = path.dirname(new URL(import.meta.url).pathname);
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css' };

// signer: a `pusher` (Node SDK) instance; nodeModules: folder holding pusher-js and laravel-echo.
export function createDemoServer({ signer, nodeModules }) {
  const vendor = {
    '/vendor/pusher.min.js': path.join(nodeModules, 'pusher-js/dist/web/pusher.min.js'),
    '/vendor/echo.iife.js': path.join(nodeModules, 'laravel-echo/dist/echo.iife.js'),
  };
  return http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (req.method === 'POST' && url.pathname === '/broadcasting/auth') {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const socketId = form.get('socket_id'), channel = form.get('channel_name');
        const userId = req.headers['x-user-id'];
        const userName = req.headers['x-user-name'] || `User ${userId}`;
        // Like routes/channels.php: a user may only listen to their own notifications.
        const own = /^private-App\.Models\.User\.(.+)$/.exec(channel || '');
        if (!userId || !socketId || !channel || (own && own[1] !== userId)) { res.writeHead(403); return res.end('Forbidden'); }
        try {
          const data = channel.startsWith('presence-') ? { user_id: userId, user_info: { id: userId, name: userName } } : undefined;
          const out = JSON.stringify(signer.authorizeChannel(socketId, channel, data));
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(out);
        } catch (e) { res.writeHead(400); res.end(String(e.message)); }
      });
      return;
    }
    let file = vendor[url.pathname];
    if (!file) {
      const rel = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
      if (rel.includes('..') || !['index.html', 'app.js'].includes(rel)) { res.writeHead(404); return res.end('not found'); }
      file = path.join(here, rel);
    }
    fs.readFile(file, (err, data) => {
      if (err) { res.writeHead(404); return res.end('not found'); }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
      res.end(data);
    });
  });
}

// By hand: HERALD_PORT=8080 node serve.mjs (run from a folder whose node_modules has
// pusher, pusher-js and laravel-echo, e.g. protocol-tests/clients), then open
// http://127.0.0.1:8000/?port=8080&key=app-key&user=1&name=Ann
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const { createRequire } = await import('node:module');
  const require = createRequire(path.join(process.cwd(), 'index.js'));
  const Pusher = require('pusher');
  const signer = new Pusher({
    appId: process.env.APP_ID || 'app-id', key: process.env.APP_KEY || 'app-key', secret: process.env.APP_SECRET || 'app-secret',
    host: '127.0.0.1', port: process.env.HERALD_PORT || '8080', useTLS: false,
  });
  const port = Number(process.env.DEMO_PORT || 8000);
  createDemoServer({ signer, nodeModules: path.join(process.cwd(), 'node_modules') }).listen(port, '127.0.0.1', () => {
    console.log(`demo on http://127.0.0.1:${port}/?port=${process.env.HERALD_PORT || 8080}&key=${process.env.APP_KEY || 'app-key'}&user=1&name=Ann`);
  });
}
