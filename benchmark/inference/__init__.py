"""Using a trained model: predictions on new images and Grad-CAM explanations."""
