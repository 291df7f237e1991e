// Cost of one database training (build-database's unit of work) per recipe, on 5-class tasks of the
// given sources, through the same job function the local runner and the queue workers call. Each recipe
// trains networks of its own space (NB201 cells or MBV3 subnets).
//   (cd packages/db-build && npx tsup) && node tools/bench/db-build.mjs [--space nb201|mbv3] [--recipes a,b] [--sources cifar10,mnist] [--n 6] [--backend wasm]
// --space picks the default recipe list (db-build's cheap recipes of that space but the tiny ones); --recipes names them.
// Reports the median wall seconds of one training (trainClassifier: training + evaluation), the median
// CPU seconds of the whole job (incl. its share of image loading: tasks of 2 architectures each), and
// the projected CPU-hours for 2,000 records, and the held-out and last-epoch training accuracies.
import { initBackend } from '@metad2a/nn';
import { DB_RECIPES, MBV3_DB_RECIPES, openSource, parseSourceSpec, planJobs, recipeSpaceOf, resolveRecipe, runTrainJob } from '@metad2a/db-build';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const n = Number(opt('n', 6));
const cheap = { nb201: DB_RECIPES, mbv3: MBV3_DB_RECIPES }[opt('space', 'nb201')];
if (!cheap) throw new Error(`--space: nb201 or mbv3, got '${opt('space')}'`);
const recipes = opt('recipes', cheap.filter((r) => !r.id.startsWith('tiny')).map((r) => r.id).join(',')).split(',');
const sources = [];
for (const s of opt('sources', 'cifar10,mnist').split(',')) sources.push(await openSource(parseSourceSpec(s)));
const info = await initBackend({ force: opt('backend') });
console.log(`backend ${info.name}${info.blas ? `, OpenBLAS ${info.blas.active ? `on (${info.blas.threads} threads)` : `off: ${info.blas.reason}`}` : ''}; ${n} trainings per recipe on 5-class tasks of ${sources.map((s) => s.name).join(', ')}`);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
for (const id of recipes) {
  const recipe = resolveRecipe(id);
  const plan = planJobs({ space: recipeSpaceOf(recipe), sources, tasks: Math.ceil(n / 2), archsPerTask: 2, recipe, seed: 1, classesPerTask: 5, testPerClass: 50 });
  await runTrainJob({ ...plan.jobs[0].data, recipe: { ...recipe, epochs: 1, maxTrainPerClass: 20 } }); // warm-up: wasm compile, first image reads
  const wall = [];
  const cpu = [];
  const acc = [];
  const train = [];
  for (const job of plan.jobs.slice(0, n)) {
    const c0 = process.cpuUsage();
    const r = await runTrainJob(job.data);
    wall.push(r.seconds);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1e6);
    acc.push(r.record.accuracy);
    train.push(r.trainAccuracy);
  }
  const mc = median(cpu);
  console.log(
    `${id.padEnd(30)} median ${median(wall).toFixed(2)} s wall, ${mc.toFixed(2)} s CPU per training ` +
      `(min ${Math.min(...wall).toFixed(2)}, max ${Math.max(...wall).toFixed(2)}); ` +
      `2,000 records = ${((2000 * mc) / 3600).toFixed(2)} CPU-hours; test accuracies ${acc.map((a) => a.toFixed(0)).join(' ')}; last-epoch train accuracies ${train.map((a) => a.toFixed(0)).join(' ')}`,
  );
}
