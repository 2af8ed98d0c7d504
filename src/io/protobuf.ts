// A protobufjs message type from a JSON descriptor embedded in the source (a subset of a .proto file), built on
// first use so that importing a module that writes protobuf costs nothing until it does.
import protobuf from 'protobufjs';

/** A protobufjs JSON descriptor (`Root.fromJSON`'s input). */
export type ProtoDescriptor = protobuf.INamespace;

/** A getter for the message type `name` (dotted, e.g. 'onnx.ModelProto') of `descriptor`, built once. */
export function lazyMessageType(descriptor: ProtoDescriptor, name: string): () => protobuf.Type {
  let t: protobuf.Type | null = null;
  return () => (t ??= protobuf.Root.fromJSON(descriptor).lookupType(name));
}
