// Free functions over several tensors, named as in torch.*.
import { callOp, op, Tensor, type TensorOrScalar } from './tensor.js';

export function cat(tensors: Tensor[], dim = 0): Tensor {
  return op('aten::cat', '', [tensors, dim]);
}
export function stack(tensors: Tensor[], dim = 0): Tensor {
  return op('aten::stack', '', [tensors, dim]);
}
/** Elementwise `condition ? a : b`. */
export function where(condition: Tensor, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (a instanceof Tensor && b instanceof Tensor) return op('aten::where', 'self', [condition, a, b]);
  if (a instanceof Tensor) return op('aten::where', 'ScalarOther', [condition, a, b]);
  if (b instanceof Tensor) return op('aten::where', 'ScalarSelf', [condition, a, b]);
  return op('aten::where', 'Scalar', [condition, a, b]);
}
export function einsum(equation: string, ...tensors: Tensor[]): Tensor {
  return op('aten::einsum', '', [equation, tensors]);
}
export function matmul(a: Tensor, b: Tensor): Tensor {
  return op('aten::matmul', '', [a, b]);
}
export function maximum(a: Tensor, b: Tensor): Tensor {
  return op('aten::maximum', '', [a, b]);
}
export function minimum(a: Tensor, b: Tensor): Tensor {
  return op('aten::minimum', '', [a, b]);
}
/** `a += alpha * b` for every pair in two equal-length lists, in one native call (momentum updates). */
export function foreachAdd_(a: Tensor[], b: Tensor[], alpha = 1): void {
  if (a.length !== b.length) throw new RangeError(`foreachAdd_: lists of ${a.length} and ${b.length} tensors`);
  if (a.length) callOp('aten::_foreach_add_', 'List', [a, b], { alpha });
}
/** `a *= s` for every tensor in a list, in one native call. */
export function foreachMul_(a: Tensor[], s: number): void {
  if (a.length) callOp('aten::_foreach_mul_', 'Scalar', [a, s]);
}
