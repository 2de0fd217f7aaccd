"""Binary mask operations shared by the methods: morphology, bounding boxes, components, stacks."""
