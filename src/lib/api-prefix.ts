// The versioned API lives under one prefix, given once: modules register their routes beneath it.
export const apiPrefix = '/v1';

/** Whether a route (by its URL) belongs to the versioned API rather than to health checks or docs. */
export const isApiRoute = (url: string): boolean => url === apiPrefix || url.startsWith(`${apiPrefix}/`);
