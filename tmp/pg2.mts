import { PGlite } from '@electric-sql/pglite';
let t0 = Date.now(); const lap = (l: string) => { console.log(l, Date.now() - t0); t0 = Date.now(); };
const c = await PGlite.create('memory://'); lap('create');
const d = await c.dumpDataDir('none'); lap('dump ' + d.size);
const c2 = await PGlite.create({ loadDataDir: d }); lap('create from dump');
await c2.query('select 1'); lap('q');
const c3 = await PGlite.create({ loadDataDir: d }); lap('create from dump 2');
const c4 = await PGlite.create('memory://'); lap('create fresh 2');
