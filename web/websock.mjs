// ES module entry point for websock.js: `import { Websock } from './websock.mjs'`
// (or `import Websock from ...`). websock.js has no export statements, so it runs
// unchanged as a module here and defines globalThis.Websock, which is re-exported.
import './websock.js';

const Websock = globalThis.Websock;
export { Websock };
export default Websock;
