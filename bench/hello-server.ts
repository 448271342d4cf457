// The api-read anchor: a bare express hello-world, run as its own process like es2d, listening on
// the UNIX socket named by argv[2]. Prints "ready" once it listens.
import express from 'express';

const socket = process.argv[2];
if (socket === undefined) {
  process.stderr.write('usage: hello-server SOCKET\n');
  process.exit(2);
}
const app = express();
app.get('/', (_req, res) => {
  res.send('Hello World!');
});
app.listen(socket, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
