// Precise Edit: room for the attention maps on Capture Cross-Attention and Instruction Locator. The server sends each
// word's map over the sampled image to the recording node (a live preview while sampling, its images when sampling
// ends); the frontend draws them below the widgets, so the node grows to show them instead of drawing over its
// neighbours.
import { app } from "../../scripts/app.js";

const RECORDING_NODES = new Set(["PreciseEdit_CaptureCrossAttention", "PreciseEdit_InstructionLocator"]);
const MAP_HEIGHT = 280;

function makeRoom(node) {
  const [width, height] = node.size;
  const needed = node.computeSize([width, height])[1] + MAP_HEIGHT;
  if (height < needed) {
    node.setSize([width, needed]);
    node.setDirtyCanvas?.(true, true);
  }
}

app.registerExtension({
  name: "PreciseEdit.AttentionMaps",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!RECORDING_NODES.has(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      const result = onExecuted?.apply(this, arguments);
      if (output?.images?.length) makeRoom(this);
      return result;
    };
  },
});
