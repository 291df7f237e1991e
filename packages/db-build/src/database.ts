import fs from 'node:fs';
import { InputError } from '@metad2a/core';
import { MetaDatabaseWriter, readDatabase, readTasks, writeTasks, type MetaRecord, type ReadDatabaseOptions, type Task } from '@metad2a/data-pipeline';
import { getTrainableSpace } from './spaces.js';

/** Architecture strings are checked with their space's parser when that space is known here. */
export const dbReadOptions: ReadDatabaseOptions = {
  validateArch(space, arch) {
    let s;
    try {
      s = getTrainableSpace(space);
    } catch {
      return null; // records of spaces this build cannot train are kept as they are
    }
    try {
      s.normalize(arch);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  },
};

export function openDatabase(file: string): Promise<MetaDatabaseWriter> {
  return MetaDatabaseWriter.open(file, dbReadOptions);
}

export async function readRecords(file: string): Promise<MetaRecord[]> {
  if (!fs.existsSync(file)) return [];
  return (await readDatabase(file, dbReadOptions)).records;
}

/** The tasks file beside a database: `db.csv` -> `db.tasks.json` (classes and image indices of every task). */
export function tasksFileOf(dbFile: string): string {
  return `${dbFile.replace(/\.(csv|jsonl?)$/i, '')}.tasks.json`;
}

/** Add tasks to the tasks file (atomically); an id already there must describe the same task. */
export function mergeTasksFile(file: string, tasks: readonly Task[]): number {
  const existing = fs.existsSync(file) ? readTasks(file) : [];
  const byId = new Map(existing.map((t) => [t.id, t]));
  let added = 0;
  for (const t of tasks) {
    const old = byId.get(t.id);
    if (!old) {
      byId.set(t.id, t);
      added++;
    } else if (JSON.stringify([old.dataset, old.classes, old.train, old.test]) !== JSON.stringify([t.dataset, t.classes, t.train, t.test])) {
      throw new InputError({ file, field: `tasks[${t.id}]` }, `task '${t.id}' is already there with other classes or images`, 'use another database file or seed');
    }
  }
  if (added > 0 || !fs.existsSync(file)) writeTasks(file, [...byId.values()]);
  return added;
}
