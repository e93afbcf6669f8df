"""The network and what it needs: Lab colour, the VGG16 backbone, the head, shipped weights, the Colorizer."""
