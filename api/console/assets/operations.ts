// GENERATED from /openapi.json by `npx tsx scripts/gen-console-client.ts` (api/docs/client-gen.ts). Do not edit:
// test/console-client.test.ts fails when this differs from the API.

/** The console's operation table: operationId → [method, path template, query parameter names]. */
export const CONSOLE_OPERATIONS_JS = String.raw`const OPERATIONS = {
  activateModel: ["POST", "/admin/models/{version}/activate", []],
  addImage: ["POST", "/v1/images", []],
  cancelJob: ["POST", "/admin/jobs/{id}/cancel", []],
  classifyImage: ["POST", "/v1/classify", ["k","method"]],
  deleteImage: ["DELETE", "/v1/images/{id}", []],
  docs: ["GET", "/docs", []],
  embedImages: ["POST", "/v1/embeddings", []],
  getCurrentModel: ["GET", "/v1/models/current", []],
  getGalleryMap: ["GET", "/v1/gallery/map", ["label","limit"]],
  getImage: ["GET", "/v1/images/{id}", []],
  getImageContent: ["GET", "/v1/images/{id}/content", []],
  getJob: ["GET", "/admin/jobs/{id}", []],
  getJobLossSvg: ["GET", "/admin/jobs/{id}/loss.svg", []],
  healthz: ["GET", "/healthz", []],
  listImages: ["GET", "/v1/images", ["cursor","limit"]],
  listJobs: ["GET", "/admin/jobs", []],
  listModels: ["GET", "/v1/models", []],
  metrics: ["GET", "/metrics", []],
  openapi: ["GET", "/openapi.json", []],
  queueRetrain: ["POST", "/admin/retrain", []],
  readyz: ["GET", "/readyz", []],
  searchGallery: ["POST", "/v1/search", ["k","label"]],
};
`;

export const CONSOLE_OPERATION_IDS = ["activateModel","addImage","cancelJob","classifyImage","deleteImage","docs","embedImages","getCurrentModel","getGalleryMap","getImage","getImageContent","getJob","getJobLossSvg","healthz","listImages","listJobs","listModels","metrics","openapi","queueRetrain","readyz","searchGallery"] as const;
