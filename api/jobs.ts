import type { Clock } from '../shared/jobs/clock.js';
import { createJob, listJobs, readJob, requestCancel } from '../shared/jobs/jobs.js';
import type { JobFile, RetrainRequest } from '../shared/jobs/schema.js';
import type { ObjectStore } from '../shared/store/object-store.js';

/** What the admin routes need from the job queue (files in the bucket, run by the worker). */
export interface JobsPort {
  create(request: RetrainRequest): Promise<JobFile>;
  list(): Promise<JobFile[]>;
  get(id: string): Promise<JobFile | null>;
  cancel(id: string): Promise<JobFile | null>;
}

export function storeJobs(store: ObjectStore, clock: Clock): JobsPort {
  return {
    create: (request) => createJob(store, request, clock),
    list: () => listJobs(store),
    get: (id) => readJob(store, id),
    cancel: (id) => requestCancel(store, id, clock),
  };
}
