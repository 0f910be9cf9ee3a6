// Express 4, installed as `express4` (npm alias) so the adapter is tested on both majors; its
// app has the shape the Express 5 types describe for everything the tests use.
declare module 'express4' {
  import type { Express } from 'express';
  const express: () => Express;
  export default express;
}
