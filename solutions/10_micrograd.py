# Reference solutions for the exercises of nbs/10_micrograd.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 10.1
backward_predictions = {
    'L.data': 12.0,                          # c = -6, d = -4, L = d*b = 12
    'a.grad': 6.0,                           # L = a*b^2 + a*b: b^2 + b
    'b.grad': -10.0,                         # 2ab + a
    "a.grad with '=' instead of '+='": 9.0,  # c's _backward runs last and sets a.grad = b * c.grad = (-3)(-3)
    "b.grad with '=' instead of '+='": -6.0, # L's _backward set it to d = -4; c's then overwrote it with a * c.grad
}

# %% exercise 10.2
def relu(self):
    "max(self, 0) as a new Node whose _backward passes out.grad to self where self was positive."
    out = Node(max(self.data, 0.0), (self,), 'ReLU')
    def _backward(): self.grad += (out.data > 0) * out.grad
    out._backward = _backward
    return out

# %% exercise 10.3
def topological_order(root):
    "Every node below root once, children before parents, without recursion."
    order, seen = [], {root}
    stack = [(root, iter(root._prev))]       # a node and how far we got through its children
    while stack:
        node, children = stack[-1]
        for child in children:
            if child not in seen:
                seen.add(child)
                stack.append((child, iter(child._prev)))
                break
        else:                                # every child is done: the node comes next
            stack.pop()
            order.append(node)
    return order

# %% exercise 10.4
def value_pow(a, b):
    "a ** b for Values a > 0 and b, as one node with both local derivatives."
    out = a.data ** b.data
    return Value(out, (a, b), '**', (b.data * a.data ** (b.data - 1), out * math.log(a.data)))

# %% exercise 10.5
my_hidden_sizes = [12, 8]      # 149 parameters
