// Start-up of the embedded database alone, as the service does it (open the data folder, apply
// or check the migrations), in a fresh process with the modules already loaded.
import { openDatabase } from '../src/db/database.js';

process.on('message', async (message: { id: number; dataDir: string }) => {
  const began = performance.now();
  const database = await openDatabase({ dataDir: message.dataDir });
  await database.migrate();
  const milliseconds = performance.now() - began;
  await database.close();
  process.send!({ id: message.id, result: { milliseconds } });
});
process.send!({ ready: true });
